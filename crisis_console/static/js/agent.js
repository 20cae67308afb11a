/*
 * Agent page: pushed scripts newest first, unread ones highlighted until "Got it", a sound
 * cue that can be muted, search over every current script, and no push lost or shown
 * twice: the socket handshake carries the last sequence seen (on every reconnection), the
 * server replays what came after, and pushes already shown are ignored.
 * Script HTML comes from the server already sanitised (markdown-it + nh3).
 */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("agent-data").textContent);
  var names = window.CC_EVENTS || {};
  var lastSeq = data.feed.last_seq || 0;
  var seen = {};
  var socket = null;

  // socket.io calls this on every (re)connection: the server replays pushes after lastSeq.
  window.ccSocketAuth = function (callback) { callback({ last_seq: lastSeq }); };

  var feed = document.getElementById("feed");
  var library = document.getElementById("library");
  var search = document.getElementById("search");
  var soundToggle = document.getElementById("sound-toggle");
  var soundOn = window.localStorage.getItem("cc-sound") !== "off";

  function esc(text) {
    var div = document.createElement("div");
    div.textContent = text == null ? "" : String(text);
    return div.innerHTML;
  }

  function timeOf(iso) {
    return window.ccTime.format(iso);
  }

  function meta(script) {
    var parts = [esc(script.topic), esc(script.language), "v" + script.version];
    if (script.expires_at) { parts.push("until " + esc(timeOf(script.expires_at))); }
    return parts.join(" · ");
  }

  function scheduleExpiry(script) {
    if (!script.expires_at) { return; }
    var wait = new Date(script.expires_at).getTime() - Date.now();
    if (wait <= 0) { removeScript(script.id); return; }
    window.setTimeout(function () { removeScript(script.id); }, Math.min(wait, 2147483000));
  }

  // A drill's script says so on its card, so no agent reads practice text to a real caller.
  function exerciseLabel(script) {
    return script.exercise ? '<span class="badge badge--exercise exercise-tag">EXERCISE</span> ' : "";
  }

  function feedCard(message, unread) {
    var script = message.script;
    var li = document.createElement("li");
    li.className = "script-card" + (unread ? " script-card--unread" : "") + (script.exercise ? " script-card--exercise" : "");
    li.dataset.scriptId = script.id;
    li.dataset.pushId = message.push_id;
    li.innerHTML =
      '<article aria-labelledby="push-title-' + message.push_id + '">' +
      '<header class="script-card__head">' +
      (unread ? '<span class="badge badge--warn new-label">New</span> ' : "") + exerciseLabel(script) +
      '<h3 id="push-title-' + message.push_id + '">' + esc(script.title) + "</h3>" +
      '<p class="muted">' + meta(script) + "</p></header>" +
      '<div class="script-body">' + script.html + "</div>" +
      (unread ? '<button class="button button--primary got-it" type="button">Got it</button>' : "") +
      "</article>";
    var button = li.querySelector(".got-it");
    if (button) {
      button.addEventListener("click", function () { acknowledge(li, message.push_id); });
    }
    return li;
  }

  function libraryItem(script) {
    var li = document.createElement("li");
    li.className = "library-item";
    li.dataset.scriptId = script.id;
    li.innerHTML =
      "<details><summary>" + exerciseLabel(script) + "<strong>" + esc(script.title) + '</strong> <span class="muted">' + meta(script) +
      "</span></summary>" + '<div class="script-body">' + script.html + "</div></details>";
    return li;
  }

  function upsertLibrary(script) {
    var old = library.querySelector('[data-script-id="' + script.id + '"]');
    var item = libraryItem(script);
    if (old) { library.replaceChild(item, old); } else { library.insertBefore(item, library.firstChild); }
  }

  function showPush(message, unread) {
    if (seen[message.push_id]) { return false; }
    seen[message.push_id] = true;
    lastSeq = Math.max(lastSeq, message.seq);
    // A newer push of the same script replaces the older card.
    var old = feed.querySelector('[data-script-id="' + message.script.id + '"]');
    if (old) { old.remove(); }
    feed.insertBefore(feedCard(message, unread), feed.firstChild);
    upsertLibrary(message.script);
    scheduleExpiry(message.script);
    refresh();
    return true;
  }

  function acknowledge(card, pushId) {
    var button = card.querySelector(".got-it");
    if (button) { button.disabled = true; button.textContent = "Sending…"; }
    socket.emit(names.SCRIPT_ACK || "script.ack", { push_id: pushId }, function () {
      card.classList.remove("script-card--unread");
      var label = card.querySelector(".new-label");
      if (label) { label.remove(); }
      if (button) { button.remove(); }
      refresh();
    });
  }

  function removeScript(scriptId) {
    document.querySelectorAll('[data-script-id="' + scriptId + '"]').forEach(function (el) { el.remove(); });
    refresh();
  }

  function refresh() {
    var unread = feed.querySelectorAll(".script-card--unread").length;
    var badge = document.getElementById("unread-count");
    badge.hidden = unread === 0;
    badge.textContent = unread + " new";
    document.title = (unread ? "(" + unread + ") " : "") + "Scripts · Crisis Console";
    document.getElementById("feed-empty").hidden = feed.children.length > 0;
    document.getElementById("library-empty").hidden = library.children.length > 0;
    applySearch();
  }

  function applySearch() {
    var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    [feed, library].forEach(function (list) {
      Array.prototype.forEach.call(list.children, function (item) {
        var text = item.textContent.toLowerCase();
        var match = words.every(function (w) { return text.indexOf(w) !== -1; });
        item.hidden = !match;
        if (match) { shown += 1; }
        if (match && words.length && list === library) { item.querySelector("details").open = true; }
      });
    });
    document.getElementById("no-results").hidden = !(words.length && shown === 0);
  }

  function beep() {
    if (!soundOn) { return; }
    try {
      var Context = window.AudioContext || window.webkitAudioContext;
      var context = new Context();
      var tone = context.createOscillator();
      var gain = context.createGain();
      tone.frequency.value = 880;
      gain.gain.value = 0.08;
      tone.connect(gain);
      gain.connect(context.destination);
      tone.start();
      tone.stop(context.currentTime + 0.18);
      tone.onended = function () { context.close(); };
    } catch (err) { /* no audio here: the highlight still shows */ }
  }

  function renderSound() {
    soundToggle.textContent = soundOn ? "Sound on" : "Sound off";
    soundToggle.setAttribute("aria-pressed", soundOn ? "true" : "false");
  }

  soundToggle.addEventListener("click", function () {
    soundOn = !soundOn;
    window.localStorage.setItem("cc-sound", soundOn ? "on" : "off");
    renderSound();
  });
  search.addEventListener("input", applySearch);
  document.addEventListener("keydown", function (event) {
    if (event.key === "/" && document.activeElement !== search) { event.preventDefault(); search.focus(); }
    if (event.key === "Escape" && document.activeElement === search) { search.value = ""; applySearch(); }
  });

  data.library.forEach(function (script) { library.appendChild(libraryItem(script)); scheduleExpiry(script); });
  // The feed arrives newest first; each card goes on top, so show the oldest first.
  data.feed.pushes.slice().reverse().forEach(function (message) { showPush(message, !message.acknowledged); });
  renderSound();
  refresh();

  document.addEventListener("cc:ready", function (event) {
    socket = event.detail.socket;
    socket.on(names.SCRIPT_PUSHED || "script.pushed", function (message) {
      if (showPush(message, true)) {
        // Report receipt after a random 0.2–1.2 s, so a floor of a thousand agents does not
        // answer at the same instant the server is still delivering the push to others.
        var delay = 200 + Math.random() * 1000;
        window.setTimeout(function () {
          socket.emit(names.SCRIPT_RECEIVED || "script.received", { push_id: message.push_id });
        }, delay);
        beep();
      }
    });
    socket.on(names.SCRIPT_RETIRED || "script.retired", function (message) { removeScript(message.script_id); });
    data.feed.pushes.forEach(function (message) {
      if (!message.acknowledged) { socket.emit(names.SCRIPT_RECEIVED || "script.received", { push_id: message.push_id }); }
    });
  });
})();
