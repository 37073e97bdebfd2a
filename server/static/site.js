// RICE Atlas: small enhancements on top of pages that work without JavaScript.
// - "/" focuses the search box; Escape closes the live results.
// - Results appear as you type (debounced), from /api/search.
// - A theme toggle (the system setting is used until one is chosen).
(function () {
  "use strict";
  var input = document.getElementById("search-input");
  var live = document.getElementById("live-results");
  var resultsList = document.getElementById("results");   // present on /search only
  var summary = document.getElementById("results-summary");
  var timer = null;
  var latest = 0;

  document.addEventListener("keydown", function (e) {
    var t = e.target;
    var typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable);
    if (e.key === "/" && !typing && input) {
      e.preventDefault();
      input.focus();
      input.select();
    } else if (e.key === "Escape" && live) {
      live.hidden = true;
    }
  });

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text) n.textContent = text;
    return n;
  }

  // Server snippets are HTML-escaped text whose only markup is <mark>; parse them without innerHTML.
  function marked(html) {
    var frag = document.createDocumentFragment();
    var doc = new DOMParser().parseFromString("<body>" + html + "</body>", "text/html");
    doc.body.childNodes.forEach(function (node) {
      if (node.nodeType === 3) frag.appendChild(document.createTextNode(node.textContent));
      else if (node.nodeName === "MARK") frag.appendChild(el("mark", null, node.textContent));
      else frag.appendChild(document.createTextNode(node.textContent));
    });
    return frag;
  }

  function renderLive(data, q) {
    live.textContent = "";
    if (!data.hits.length) {
      live.appendChild(el("li", "live-more", "No results for “" + q + "”"));
    }
    data.hits.forEach(function (h) {
      var li = el("li");
      var a = el("a");
      a.href = h.url;
      var title = el("span", "live-title");
      title.appendChild(marked(h.title_html));
      var snip = el("span", "live-snippet");
      snip.appendChild(marked(h.snippet_html));
      a.appendChild(title);
      a.appendChild(snip);
      li.appendChild(a);
      live.appendChild(li);
    });
    if (data.total > data.hits.length) {
      var more = el("li", "live-more");
      var a = el("a", null, "All " + data.total + " results →");
      a.href = "/search?q=" + encodeURIComponent(q);
      more.appendChild(a);
      live.appendChild(more);
    }
    live.hidden = false;
  }

  function renderPage(data, q) {
    resultsList.textContent = "";
    data.hits.forEach(function (h) {
      var li = el("li", "result");
      var h3 = el("h3");
      var a = el("a");
      a.href = h.url;
      a.appendChild(marked(h.title_html));
      h3.appendChild(a);
      var snip = el("p", "snippet");
      snip.appendChild(marked(h.snippet_html));
      li.appendChild(h3);
      li.appendChild(snip);
      resultsList.appendChild(li);
    });
    if (summary) summary.textContent = data.total + " results for “" + q + "” in " + data.took_us + " µs.";
    history.replaceState(null, "", "/search?q=" + encodeURIComponent(q));
  }

  function search(q) {
    var id = ++latest;
    var params = new URLSearchParams({ q: q, limit: resultsList ? "20" : "8" });
    fetch("/api/search?" + params.toString(), { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data || id !== latest) return;   // a newer query is on its way
        if (resultsList) renderPage(data, q); else renderLive(data, q);
      })
      .catch(function () { /* the form still works */ });
  }

  if (input) {
    input.addEventListener("input", function () {
      var q = input.value.trim();
      clearTimeout(timer);
      if (!q) { if (live) live.hidden = true; return; }
      timer = setTimeout(function () { search(q); }, 120);
    });
    document.addEventListener("click", function (e) {
      if (live && !live.contains(e.target) && e.target !== input) live.hidden = true;
    });
  }

  var toggle = document.getElementById("theme-toggle");
  var root = document.documentElement;
  var saved = null;
  try { saved = localStorage.getItem("theme"); } catch (e) { /* storage may be blocked */ }
  if (saved === "light" || saved === "dark") root.dataset.theme = saved;
  if (toggle) {
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      var dark = root.dataset.theme ? root.dataset.theme === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
      root.dataset.theme = dark ? "light" : "dark";
      try { localStorage.setItem("theme", root.dataset.theme); } catch (e) { /* ignore */ }
    });
  }
})();
