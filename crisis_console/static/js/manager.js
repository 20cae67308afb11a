/*
 * Manager console: live acknowledgement bars for pushes, and a notice when scripts change
 * elsewhere (another manager approved or edited one) so the lists can be refreshed.
 */
(function () {
  "use strict";

  var names = window.CC_EVENTS || {};
  var pendingTimers = {};

  function pct(part, whole) { return whole ? (100 * part / whole).toFixed(1) + "%" : "0%"; }

  function pushRow(push) {
    var li = document.createElement("li");
    li.className = "push";
    li.id = "push-" + push.id;
    li.dataset.pushId = push.id;
    var esc = window.crisisConsole.escapeText;
    var audience = push.audience === "all" ? "all" : push.audience.join(", ");
    li.innerHTML =
      '<div class="push__head"><strong>#' + push.seq + " · " + esc(push.title) + '</strong> <span class="muted">v' +
      push.version + " · " + esc(push.language) + " · to " + esc(audience) + "</span></div>" +
      '<div class="progress" role="img"><div class="progress__delivered"></div><div class="progress__acked"></div></div>' +
      '<p class="push__counts"><strong class="push__acked">0</strong> / <span class="push__size">' + push.audience_size +
      '</span> acknowledged · <span class="push__delivered">0</span> received</p><p class="push__speed" aria-live="polite"></p><p class="push__pending muted"></p>';
    var list = document.getElementById("pushes");
    if (!list) {
      list = document.createElement("ul");
      list.className = "pushes";
      list.id = "pushes";
      var card = document.getElementById("pushes-title").parentNode;
      var empty = card.querySelector("p.muted");
      if (empty) { empty.remove(); }
      card.appendChild(list);
    }
    list.insertBefore(li, list.firstChild);
    return li;
  }

  function refreshPending(pushId) {
    if (pendingTimers[pushId]) { return; }
    pendingTimers[pushId] = setTimeout(function () {
      delete pendingTimers[pushId];
      fetch("/api/v1/pushes/" + pushId, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (push) {
          if (!push) { return; }
          var row = document.getElementById("push-" + pushId) || pushRow(push);
          update(row, push);
          row.querySelector(".push__pending").textContent = push.pending.length
            ? "Pending: " + push.pending.join(", ")
            : "Everyone has acknowledged.";
          showSpeed(row, push.propagation);
          // Until it has reached every connected screen (or is late), look again: a push
          // nobody receives sends no progress to wake this page.
          var p = push.propagation;
          if (p && p.connected && p.received_ms["100"] === null && !p.late) {
            setTimeout(function () { refreshPending(pushId); }, 600);
          }
        })
        .catch(function () {});
    }, 700);
  }

  function duration(ms) {
    if (ms === null || ms === undefined) { return "not yet"; }
    return ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(1) + " s";
  }

  function shares(figures) {
    return ["50", "90", "100"].map(function (share) {
      return share + " % in " + duration(figures[share]);
    }).join(" · ");
  }

  // "Reached 50 % in 40 ms · 90 % in 85 ms · 100 % in 120 ms of the 25 connected screens",
  // and the same for "Got it"; a push not on every connected screen 2 s after it went out
  // is marked, so the manager can see who is behind (pending list) or push again.
  function showSpeed(row, p) {
    var out = row.querySelector(".push__speed");
    if (!out || !p) { return; }
    out.textContent = "";
    if (!p.connected) {
      out.textContent = "No agent was connected when it went out.";
      row.classList.remove("push--late");
      return;
    }
    var text = "Reached " + shares(p.received_ms) + " of the " + p.connected + " connected screen" +
      (p.connected === 1 ? "" : "s") + ". Acknowledged " + shares(p.acknowledged_ms) + ".";
    if (p.late) {
      var badge = document.createElement("span");
      badge.className = "badge badge--warn";
      badge.textContent = p.received_ms["100"] === null ? "Not on every screen after 2 s" : "Slow: over 2 s";
      out.appendChild(badge);
      out.appendChild(document.createTextNode(" "));
    }
    out.appendChild(document.createTextNode(text));
    row.classList.toggle("push--late", !!p.late);
  }

  function update(row, progress) {
    row.querySelector(".push__acked").textContent = progress.acknowledged;
    row.querySelector(".push__delivered").textContent = progress.delivered;
    row.querySelector(".push__size").textContent = progress.audience_size;
    row.querySelector(".progress__acked").style.width = pct(progress.acknowledged, progress.audience_size);
    row.querySelector(".progress__delivered").style.width = pct(progress.delivered, progress.audience_size);
    row.querySelector(".progress").setAttribute(
      "aria-label", progress.acknowledged + " of " + progress.audience_size + " acknowledged");
  }

  function noticeScriptsChanged() {
    window.crisisConsole.offerRefresh("scripts-changed", "Scripts changed.");
  }

  var shareForm = document.getElementById("share-form");
  if (shareForm) {
    shareForm.addEventListener("api:done", function (event) {
      var out = document.getElementById("share-url");
      out.querySelector("code").textContent = event.detail.url;
      out.hidden = false;
    });
  }

  function start() {
    var cc = window.crisisConsole;
    cc.onEvent(names.PUSH_PROGRESS || "push.progress", function (progress) {
      var row = document.getElementById("push-" + progress.push_id);
      if (row) { update(row, progress); }
      refreshPending(progress.push_id);
    });
    cc.onEvent(names.SCRIPT_CHANGED || "script.changed", noticeScriptsChanged);
    cc.onEvent(names.SCRIPT_RETIRED || "script.retired", noticeScriptsChanged);
    // Progress sent while the page loaded or the connection was down is not replayed:
    // re-read the pushes on the page on every (re)connection.
    cc.socket.on("connect", function () {
      document.querySelectorAll("#pushes .push[data-push-id]").forEach(function (row) {
        refreshPending(row.dataset.pushId);
      });
    });
  }

  if (window.crisisConsole && window.crisisConsole.socket) { start(); }
  else { document.addEventListener("cc:ready", start); }
})();
