/* Spike list on the dashboard and the manager console: new spikes arrive over the socket. */
(function () {
  "use strict";

  var events = window.CC_EVENTS || {};
  var namesEl = document.getElementById("category-names");
  var names = namesEl ? JSON.parse(namesEl.textContent) : {};

  function start() {
    window.crisisConsole.onEvent(events.SPIKE_DETECTED || "spike.detected", function (spike) {
      var list = document.getElementById("spikes");
      if (!list) { return; }
      var esc = window.crisisConsole.escapeText;
      var item = document.createElement("li");
      item.className = "spike spike--new";
      item.dataset.category = spike.category;
      item.innerHTML = "<strong>" + esc(names[spike.category] || spike.category) + "</strong>" +
        (spike.zip ? " in " + esc(spike.zip) : "") + ": " + spike.observed + " vs " + spike.expected +
        " expected, since " + esc(String(spike.since).slice(11, 16)) + " UTC";
      list.insertBefore(item, list.firstChild);
      document.getElementById("spikes-empty").hidden = true;
    });
  }
  if (window.crisisConsole && window.crisisConsole.socket) { start(); } else { document.addEventListener("cc:ready", start); }
})();
