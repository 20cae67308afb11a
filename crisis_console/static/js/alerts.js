/*
 * Alerts, live. On the alerts page an alert raised or a delivery's new status redraws the
 * table from the API; on the manager console a new alert goes on top of "Latest alerts".
 */
(function () {
  "use strict";

  var events = window.CC_EVENTS || {};
  var latest = document.getElementById("recent-alerts");
  if (latest) {
    var startLatest = function () {
      window.crisisConsole.onEvent(events.ALERT_SENT || "alert.sent", function (message) {
        var a = message.alert;
        if (latest.querySelector('[data-alert-id="' + a.id + '"]')) { return; }
        var item = document.createElement("li");
        item.className = "alert-item alert-item--new";
        item.dataset.alertId = a.id;
        item.textContent = a.message;  // a drill's message already starts with EXERCISE
        latest.insertBefore(item, latest.firstChild);
        document.getElementById("recent-alerts-empty").hidden = true;
      });
    };
    if (window.crisisConsole && window.crisisConsole.socket) { startLatest(); } else { document.addEventListener("cc:ready", startLatest); }
  }
  var table = document.getElementById("alerts");
  if (!table) { return; }

  function badge(status) {
    var tone = status === "sent" || status === "delivered" ? "ok" :
      (status === "failed" ? "off" : (status === "skipped" ? "neutral" : "warn"));
    return '<span class="badge badge--' + tone + '">' + status + "</span>";
  }

  function row(a) {
    var esc = window.crisisConsole.escapeText;
    var deliveries = a.deliveries.map(function (d) {
      return '<li data-delivery-id="' + d.id + '" data-status="' + esc(d.status) + '">' + esc(d.channel) + " → " +
        esc(d.username || d.to) + ": " + badge(esc(d.status)) +
        (d.attempts > 1 ? " after " + d.attempts + " attempts" : "") +
        (d.last_error ? ' <span class="muted">(' + esc(d.last_error) +
          (d.skip_reason === "no_address" ? ": an administrator can add it on Users" :
            (d.skip_reason === "opted_out" ? ": only its owner can undo that, by texting START" : "")) + ")</span>" : "") +
        (d.step ? ' <span class="muted">[' + esc(d.step) + "]</span>" : "") + "</li>";
    }).join("");
    var ack = a.acknowledged_by ? esc(a.acknowledged_by) + (a.acknowledged_at ? '<br><span class="muted">' + esc(window.ccTime.format(a.acknowledged_at, "time")) + "</span>" : "") :
      '<form class="inline" data-api-url="/api/v1/alerts/' + a.id + '/ack">' +
      '<button class="button button--small button--primary" type="submit">Acknowledge</button></form>';
    return '<tr data-alert-id="' + a.id + '"><td><time datetime="' + esc(a.created_at) + '">' +
      esc(window.ccTime.format(a.created_at)) + "</time></td><td><strong>" + esc(a.message) +
      '</strong><br><span class="muted">' + esc(a.rule_id) + " · " + esc(a.trigger) + "</span></td>" +
      '<td><ul class="deliveries">' + deliveries + "</ul></td><td>" + ack + "</td></tr>";
  }

  var waiting = false;
  function refresh() {
    if (waiting) { return; }
    waiting = true;
    window.setTimeout(function () {
      window.ccApi("GET", table.dataset.api).then(function (data) {
        waiting = false;
        table.tBodies[0].innerHTML = data.alerts.map(row).join("");
        table.hidden = data.alerts.length === 0;
        document.getElementById("alerts-empty").hidden = data.alerts.length > 0;
      }, function () { waiting = false; });
    }, 250);
  }

  document.addEventListener("api:done", refresh);
  // An alert raised while the page was loading or offline came before the socket could tell
  // it: read the list again each time the connection goes live.
  document.addEventListener("cc:connection", function (event) {
    if (event.detail.state === "live") { refresh(); }
  });
  table.addEventListener("submit", function (event) { event.target.dataset.after = "none"; }, true);

  function start() {
    window.crisisConsole.onEvent(events.ALERT_SENT || "alert.sent", refresh);
    window.crisisConsole.onEvent(events.DELIVERY_CHANGED || "delivery.changed", refresh);
  }
  if (window.crisisConsole && window.crisisConsole.socket) { start(); } else { document.addEventListener("cc:ready", start); }
})();
