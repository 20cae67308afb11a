/*
 * What every page needs before its own scripts run, without inline code (the
 * Content-Security-Policy allows scripts from /static only):
 *   window.CC_EVENTS      the server's Socket.IO event names, from <script id="cc-events"
 *                         type="application/json"> (JSON blocks are data, never run);
 *   [data-print]          buttons that print the page (a situation report, a timing report);
 *   [data-width]          bars drawn to a percentage (set through the CSSOM, which the
 *                         policy allows, where a style attribute in markup is refused).
 * Scripts that draw bars later call window.ccPage.widths(root).
 */
(function () {
  "use strict";

  var events = document.getElementById("cc-events");
  if (events) { window.CC_EVENTS = JSON.parse(events.textContent); }

  function widths(root) {
    (root || document).querySelectorAll("[data-width]").forEach(function (el) {
      var value = parseFloat(el.getAttribute("data-width"));
      el.style.width = (isFinite(value) ? Math.max(0, Math.min(100, value)) : 0) + "%";
    });
  }

  window.ccPage = { widths: widths };

  function ready() {
    widths(document);
    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.addEventListener("click", function () { window.print(); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
