// Runs right after the sidebar checkbox, before the page is drawn: picks the theme and opens or hides the sidebar
// (mdBook's inline start-up scripts, moved to a file).
(function () {
    "use strict";
    var html = document.documentElement;
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    window.default_theme = dark ? window.default_dark_theme : window.default_light_theme;
    var stored = function (key) {
        try {
            var value = localStorage.getItem(key);
            // Older mdBook versions stored values wrapped in quotes.
            if (value && value.length > 1 && value[0] === '"' && value[value.length - 1] === '"') {
                value = value.slice(1, -1);
                localStorage.setItem(key, value);
            }
            return value;
        } catch (e) {
            return null;
        }
    };
    var theme = stored("mdbook-theme") || window.default_theme;
    html.classList.remove(html.dataset.defaultTheme);
    html.classList.add(theme);
    html.classList.add("js");

    var toggle = document.getElementById("mdbook-sidebar-toggle-anchor");
    var sidebar = "hidden";
    if (document.body.clientWidth >= 1080) {
        sidebar = stored("mdbook-sidebar") || "visible";
    }
    window.sidebar = sidebar;
    if (sidebar === "visible") {
        toggle.checked = true;
    } else {
        toggle.checked = false;
        html.classList.remove("sidebar-visible");
    }
})();
