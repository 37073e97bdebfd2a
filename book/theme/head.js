// The globals mdBook's toc.js and book.js expect, read from data attributes on <html> (no inline script: the
// site's Content-Security-Policy forbids them).
(function () {
    "use strict";
    var data = document.documentElement.dataset;
    window.path_to_root = data.pathToRoot || "";
    window.default_light_theme = data.defaultTheme || "light";
    window.default_dark_theme = data.preferredDarkTheme || "navy";
})();
