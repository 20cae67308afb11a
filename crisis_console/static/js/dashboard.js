/*
 * Dashboard: the last hour's contacts by category, re-read from the counters whenever the
 * server says new complaints were counted (at most once a second), without reloading.
 */
(function () {
  "use strict";

  var names = JSON.parse(document.getElementById("category-names").textContent);
  var events = window.CC_EVENTS || {};
  var timer = null;

  function render(result) {
    var rows = Object.keys(result.totals)
      .filter(function (code) { return code !== "all" && result.totals[code] > 0; })
      .map(function (code) { return [code, result.totals[code]]; })
      .sort(function (a, b) { return b[1] - a[1]; })
      .slice(0, 15);
    var esc = window.crisisConsole.escapeText;
    var body = document.querySelector("#counts tbody");
    body.innerHTML = rows.length ? rows.map(function (row) {
      var width = (100 * row[1] / rows[0][1]).toFixed(1);
      return '<tr data-category="' + esc(row[0]) + '"><td>' + esc(names[row[0]] || row[0]) +
        '</td><td class="count">' + row[1] + '</td><td><span class="bar" style="width: ' + width + '%"></span></td></tr>';
    }).join("") : '<tr class="empty"><td colspan="3" class="muted">No contacts logged in the last hour.</td></tr>';
    document.getElementById("contacts-total").textContent = result.totals.all;
  }

  function refresh() {
    timer = null;
    fetch("/api/v1/trends?window=60m&bucket=60m", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (result) { if (result) { render(result); } })
      .catch(function () {});
  }

  function start() {
    window.crisisConsole.onEvent(events.TRENDS_UPDATE || "trends.update", function () {
      if (!timer) { timer = window.setTimeout(refresh, 1000); }
    });
    window.crisisConsole.socket.on("connect", refresh);  // catch up after a reconnection
  }
  if (window.crisisConsole && window.crisisConsole.socket) { start(); } else { document.addEventListener("cc:ready", start); }
})();
