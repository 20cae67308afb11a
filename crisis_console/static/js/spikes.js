/* Spike list on the dashboard and the manager console: new spikes arrive over the socket. */
(function () {
  "use strict";

  var events = window.CC_EVENTS || {};
  var namesEl = document.getElementById("category-names");
  var names = namesEl ? JSON.parse(namesEl.textContent) : {};

  /* The closed loop: one click drafts the hazard's script or announcement for the event. */
  function addSuggestions(list, item, suggestions, url) {
    var esc = window.crisisConsole.escapeText;
    suggestions.forEach(function (g) {
      // Once per hazard: a second spike of the same hazard does not invite another draft.
      if (list.querySelector('.suggestion[data-hazard="' + CSS.escape(g.hazard) + '"]')) { return; }
      var box = document.createElement("div");
      box.className = "suggestion";
      box.dataset.hazard = g.hazard;
      box.innerHTML = "Suggested for " + esc(g.event_name) + ": <em>" + esc(g.title) + "</em> " +
        ((g.drafts || []).length ? '<span class="suggestion__drafts">already drafted:' + g.drafts.map(function (d) {
          return ' <a href="/manager/scripts/' + Number(d.id) + '">' + esc(d.language) + " · " +
            esc(String(d.state).replace("_", " ")) + "</a>";
        }).join("") + "</span> " : "");
      g.kinds.forEach(function (kind) {
        var form = document.createElement("form");
        form.className = "inline";
        form.dataset.apiUrl = url;
        form.dataset.after = kind === "script" ? "redirect:/manager/scripts/{id}" : "redirect:/manager/phone";
        form.innerHTML = '<input type="hidden" name="kind" value="' + kind + '">' +
          '<input type="hidden" name="hazard" value="' + esc(g.hazard) + '">' +
          '<input type="hidden" name="event_id" value="' + Number(g.event_id) + '" data-number>' +
          '<button class="button button--small" type="submit">Draft ' + kind + "</button>";
        box.appendChild(form);
      });
      item.appendChild(box);
    });
  }

  function start() {
    window.crisisConsole.onEvent(events.SPIKE_DETECTED || "spike.detected", function (spike) {
      var list = document.getElementById("spikes");
      if (!list) { return; }
      var esc = window.crisisConsole.escapeText;
      var item = document.createElement("li");
      item.className = "spike spike--new";
      item.dataset.category = spike.category;
      if (spike.hazard) { item.dataset.hazard = spike.hazard; }
      item.innerHTML = "<strong>" + esc(spike.label || names[spike.category] || spike.category) + "</strong>" +
        (spike.zip ? " in " + esc(spike.zip) : "") + ": " + spike.observed + " vs " + spike.expected +
        " expected, since " + esc(window.ccTime.format(spike.since, "time"));
      if (list.dataset.suggest) { addSuggestions(list, item, spike.suggestions || [], list.dataset.draftUrl); }
      list.insertBefore(item, list.firstChild);
      document.getElementById("spikes-empty").hidden = true;
    });
  }
  if (window.crisisConsole && window.crisisConsole.socket) { start(); } else { document.addEventListener("cc:ready", start); }
})();
