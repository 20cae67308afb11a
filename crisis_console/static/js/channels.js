/* "What each channel says now" on the manager console: the panels are rendered by the server
 * (console/_channels.html) and fetched again whenever something they show may have moved: a
 * script approved or retired, an event changed, an announcement on or off air, a push
 * acknowledged, or the manager's own action in a panel. Bursts (a push acknowledged by a
 * hundred agents) become one fetch. */
(function () {
  "use strict";

  var names = window.CC_EVENTS || {};
  var box = document.getElementById("channels");
  if (!box) { return; }
  var timer = null;
  var due = 0;
  var stale = false;
  var DELAY_MS = 400;
  var PROGRESS_DELAY_MS = 3000;

  function refresh() {
    timer = null;
    fetch(box.dataset.url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        // Keep the manager's place: a panel they are using is not redrawn under their hands.
        if (box.contains(document.activeElement) && document.activeElement !== document.body) {
          stale = true;
          return;
        }
        stale = false;
        box.innerHTML = html;
      })
      .catch(function () {});
  }

  // One fetch for a burst; a change that matters sooner brings a later-planned fetch forward.
  function soon(delay) {
    var wait = typeof delay === "number" ? delay : DELAY_MS;
    var at = Date.now() + wait;
    if (timer !== null && due <= at) { return; }
    if (timer !== null) { window.clearTimeout(timer); }
    due = at;
    timer = window.setTimeout(refresh, wait);
  }

  // Acknowledgements stream in by the hundred after a push: their counts here may trail by a
  // few seconds (the push table above is live), so each of them does not cost a report.
  function afterProgress() { soon(PROGRESS_DELAY_MS); }

  box.addEventListener("api:done", function () { refresh(); });
  box.addEventListener("focusout", function (event) {
    if (stale && !box.contains(event.relatedTarget)) { soon(); }
  });

  function start() {
    var cc = window.crisisConsole;
    [
      names.SCRIPT_CHANGED || "script.changed",
      names.SCRIPT_RETIRED || "script.retired",
      names.EVENT_CHANGED || "event.changed",
      names.ANNOUNCEMENT_CHANGED || "announcement.changed"
    ].forEach(function (name) { cc.onEvent(name, function () { soon(); }); });
    cc.onEvent(names.PUSH_PROGRESS || "push.progress", afterProgress);
    cc.socket.on("connect", function () { soon(); });
  }

  if (window.crisisConsole && window.crisisConsole.socket) { start(); }
  else { document.addEventListener("cc:ready", start); }
})();
