// After mdBook's book.js: accessibility state of the sidebar, and the site search box (`/` focuses it).
(function () {
    "use strict";
    var visible = window.sidebar === "visible";
    var toggle = document.getElementById("mdbook-sidebar-toggle");
    var sidebar = document.getElementById("mdbook-sidebar");
    if (toggle) toggle.setAttribute("aria-expanded", visible ? "true" : "false");
    if (sidebar) sidebar.setAttribute("aria-hidden", visible ? "false" : "true");
    Array.prototype.forEach.call(document.querySelectorAll("#mdbook-sidebar a"), function (link) {
        link.setAttribute("tabIndex", visible ? 0 : -1);
    });

    var input = document.getElementById("rice-search-input");
    document.addEventListener("keydown", function (e) {
        if (e.key !== "/" || e.altKey || e.ctrlKey || e.metaKey || !input) return;
        var active = document.activeElement;
        if (active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA" || active.isContentEditable)) return;
        e.preventDefault();
        input.focus();
    });
})();
