/* Datalabs UI: small progressive enhancements. Every page works without this file. */
(function () {
  "use strict";

  function copyText(input, button) {
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { input.select(); });
    } else {
      input.select();
      try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
    }
  }

  function setUp(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      var input = document.getElementById(button.getAttribute("data-copy"));
      if (!input || button.dataset.ready) { return; }
      button.dataset.ready = "1";
      button.hidden = false;
      button.addEventListener("click", function () { copyText(input, button); });
      input.addEventListener("focus", function () { input.select(); });
    });
  }

  // The header's "Running labs" menu is a <details>: close it on a click elsewhere or on Escape.
  function closeMenus(except) {
    document.querySelectorAll("details.running-menu[open]").forEach(function (menu) {
      if (menu !== except) { menu.open = false; }
    });
  }
  document.addEventListener("click", function (event) {
    closeMenus(event.target.closest ? event.target.closest("details.running-menu") : null);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { closeMenus(null); }
  });

  document.addEventListener("DOMContentLoaded", function () { setUp(document); });
  document.addEventListener("htmx:load", function (event) { setUp(event.target); });
})();
