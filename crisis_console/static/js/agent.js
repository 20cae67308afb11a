/*
 * Agent page: pushed scripts newest first, unread ones highlighted until "Got it", a sound
 * cue that can be muted, search over every current script, and no push lost or shown
 * twice. Pushes carry a gap-free, deployment-wide seq, so the page heals by sequence (any
 * client can do the same):
 *   - `cursor` is the seq up to which every push addressed to this agent has been shown;
 *   - a push numbered cursor + 1 is shown at once; one further ahead means pushes may have
 *     been missed (a message-queue hiccup): the page fetches GET /api/v1/pushes?after_seq=
 *     cursor, shows what it lacks, then the live one, and moves the cursor to the answer's
 *     `last_seq` (pushes in between may be for other teams);
 *   - it asks the same question every 30 s, on regaining the network and on becoming
 *     visible (an empty answer costs one small request), retrying a failed fetch with backoff;
 *   - the socket handshake carries `last_seq` = cursor on every reconnection and the server
 *     replays what came after; a push already shown (by push_id) is ignored.
 * "Got it" is retried with backoff until the server confirms it (socket acknowledgement,
 * or HTTP when the socket is down); the card says "Saved" only then, and "Not saved yet,
 * retrying…" meanwhile. Acknowledging twice counts once on the server.
 * Each script shows in the agent's own language when a translation exists (the others one
 * click away, in place); the library lists the agent's language first, the rest folded away.
 * When the browser holds back the sound, a calm "Turn on sound" says so; when the live
 * connection drops, a banner says the page may be out of date until it is back.
 * Script HTML comes from the server already sanitised (markdown-it + nh3).
 */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("agent-data").textContent);
  var names = window.CC_EVENTS || {};
  var cursor = data.feed.last_seq || 0;
  var seen = {};
  var socket = null;
  var CHECK_EVERY = 30000;
  var RETRY_FIRST = 1000;
  var RETRY_MAX = 30000;
  var ACK_TIMEOUT = 5000;

  // socket.io calls this on every (re)connection: the server replays pushes after the cursor.
  window.ccSocketAuth = function (callback) { callback({ last_seq: cursor }); };

  var feed = document.getElementById("feed");
  var library = document.getElementById("library");
  var libraryOther = document.getElementById("library-other");
  var otherLanguages = document.getElementById("other-languages");
  var search = document.getElementById("search");
  var soundToggle = document.getElementById("sound-toggle");
  var soundBlocked = document.getElementById("sound-blocked");
  var languagePicker = document.getElementById("my-language");
  var soundOn = window.localStorage.getItem("cc-sound") !== "off";
  var myLanguage = data.language || "en";
  var linkText = data.language_names || {};
  // Every current script by id, and each translation group's scripts by language.
  var scripts = {};
  var groups = {};
  var messages = {};

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

  // --- translations ----------------------------------------------------------------

  function remember(script) {
    var old = scripts[script.id];
    if (old && old.group_id != null && groups[old.group_id]) { delete groups[old.group_id][old.language]; }
    scripts[script.id] = script;
    if (script.group_id == null) { return; }
    groups[script.group_id] = groups[script.group_id] || {};
    groups[script.group_id][script.language] = script;
  }

  function forget(scriptId) {
    var old = scripts[scriptId];
    if (!old) { return; }
    delete scripts[scriptId];
    if (old.group_id != null && groups[old.group_id]) { delete groups[old.group_id][old.language]; }
  }

  // The other current languages of a script, as {language: script}.
  function translationsOf(script) {
    var found = {};
    var group = script.group_id == null ? null : groups[script.group_id];
    if (!group) { return found; }
    Object.keys(group).forEach(function (lang) {
      if (lang !== script.language) { found[lang] = group[lang]; }
    });
    return found;
  }

  // The version of a script to show this agent first: theirs when it exists.
  function preferred(script) {
    return script.language === myLanguage ? script : (translationsOf(script)[myLanguage] || script);
  }

  function switcher(shown, original) {
    var others = translationsOf(shown);
    var langs = Object.keys(others);
    if (!langs.length) { return ""; }
    return '<p class="translations" role="group" aria-label="This script in other languages">' + langs.map(function (lang) {
      var text = linkText[lang] || lang;
      if (original && lang === original.language && lang !== shown.language) { text += " (as pushed)"; }
      return '<button type="button" class="translation-link" lang="' + esc(lang) + '" data-show="' + others[lang].id + '">' + esc(text) + "</button>";
    }).join("") + "</p>";
  }

  // Shift the headings of a script's own text so its highest is level `top`: a script may
  // start at "#", but on the page it sits under the card's title and must skip no level.
  function relevel(element, top) {
    var headings = element.querySelectorAll("h1, h2, h3, h4, h5, h6");
    if (!headings.length) { return; }
    var highest = 6;
    headings.forEach(function (h) { highest = Math.min(highest, Number(h.tagName[1])); });
    headings.forEach(function (h) {
      var level = Math.min(6, Number(h.tagName[1]) - highest + top);
      var moved = document.createElement("h" + level);
      while (h.firstChild) { moved.appendChild(h.firstChild); }
      h.replaceWith(moved);
    });
  }

  // Fill a card or library item with one language's version; its links switch it in place.
  function fill(container, shown, original, titleId) {
    // A feed card's title is an h3 (its text starts at h4); a library item's is no heading.
    var top = container.querySelector(".script-card__head") ? 4 : 3;
    var head = container.querySelector(".script-card__head h3, summary strong");
    if (head) { head.textContent = shown.title; head.setAttribute("lang", shown.language); }
    var metaEl = container.querySelector(".script-meta");
    if (metaEl) { metaEl.innerHTML = meta(shown); }
    var note = container.querySelector(".translation-note");
    if (note) {
      note.hidden = !original || original.id === shown.id;
      note.textContent = original && original.id !== shown.id
        ? "Pushed as “" + original.title + "” (" + (original.language || "") + "); shown in your language."
        : "";
    }
    var links = container.querySelector(".translations-slot");
    links.innerHTML = switcher(shown, original);
    var body = container.querySelector(".script-body");
    body.innerHTML = shown.html;
    relevel(body, top);
    body.setAttribute("lang", shown.language);
    // Agent notes are internal guidance (never on a public channel): shown apart, marked so.
    var notes = container.querySelector(".script-notes");
    if (notes) {
      notes.hidden = !shown.notes_html;
      var notesBody = notes.querySelector(".script-notes__body");
      notesBody.innerHTML = shown.notes_html || "";
      relevel(notesBody, top + 1);
      notes.setAttribute("lang", shown.language);
    }
    container.dataset.shownId = shown.id;
    links.querySelectorAll("[data-show]").forEach(function (button) {
      button.addEventListener("click", function () {
        var next = scripts[button.dataset.show] || (original && String(original.id) === button.dataset.show ? original : null);
        if (!next) { return; }
        fill(container, next, original, titleId);
        var again = container.querySelector('.translation-link[lang="' + shown.language + '"]');
        if (again) { again.focus(); }
      });
    });
  }

  function feedCard(message, unread) {
    var script = message.script;
    var li = document.createElement("li");
    li.className = "script-card" + (unread ? " script-card--unread" : "") + (script.exercise ? " script-card--exercise" : "");
    li.dataset.scriptId = script.id;
    li.dataset.pushId = message.push_id;
    li.dataset.seq = message.seq;
    li.innerHTML =
      '<article tabindex="-1" aria-labelledby="push-title-' + message.push_id + '">' +
      '<header class="script-card__head">' +
      (unread ? '<span class="badge badge--warn new-label">New</span> ' : "") + exerciseLabel(script) +
      '<h3 id="push-title-' + message.push_id + '"></h3>' +
      '<p class="muted script-meta"></p></header>' +
      '<p class="translation-note muted" hidden></p>' +
      '<div class="translations-slot"></div>' +
      '<div class="script-body"></div>' +
      '<aside class="script-notes" hidden><h4 class="script-notes__title">Agent notes: internal guidance, not for the public</h4><div class="script-notes__body"></div></aside>' +
      (unread ? '<button class="button button--primary got-it" type="button">Got it</button>' : "") +
      "</article>";
    fill(li, preferred(script), script, "push-title-" + message.push_id);
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
      "<details><summary>" + exerciseLabel(script) + '<strong></strong> <span class="muted script-meta"></span></summary>' +
      '<div class="translations-slot"></div><div class="script-body"></div>' +
      // The library's titles are no headings (a heading inside <summary> reads badly), so the
      // notes heading sits right under the section's h2.
      '<aside class="script-notes" hidden><h3 class="script-notes__title">Agent notes: internal guidance, not for the public</h3><div class="script-notes__body"></div></aside></details>';
    fill(li, script, null, null);
    return li;
  }

  // One entry per translation group in the agent's language when it has one (or its first
  // version otherwise); every other version goes under "Other languages".
  function renderLibrary() {
    var ordered = Object.keys(scripts).map(function (id) { return scripts[id]; })
      .sort(function (a, b) { return (b.order || 0) - (a.order || 0); });
    var mine = [];
    var rest = [];
    var shownGroups = {};
    ordered.forEach(function (script) {
      if (script.language === myLanguage) { mine.push(script); shownGroups[script.group_id] = true; }
    });
    ordered.forEach(function (script) {
      if (script.language === myLanguage) { return; }
      var key = script.group_id == null ? "s" + script.id : script.group_id;
      if (!shownGroups[key] && !(script.group_id != null && translationsOf(script)[myLanguage])) {
        shownGroups[key] = true;
        mine.push(script);
      } else {
        rest.push(script);
      }
    });
    mine.sort(function (a, b) { return (b.order || 0) - (a.order || 0); });
    library.innerHTML = "";
    libraryOther.innerHTML = "";
    mine.forEach(function (script) { library.appendChild(libraryItem(script)); });
    rest.forEach(function (script) { libraryOther.appendChild(libraryItem(script)); });
    otherLanguages.hidden = rest.length === 0;
    document.getElementById("other-count").textContent = rest.length;
  }

  var order = 0;
  function upsertLibrary(script) {
    var old = scripts[script.id];
    var entry = Object.assign({}, script, { order: old && old.version === script.version ? old.order : ++order });
    remember(entry);
    renderLibrary();
  }

  // The agent's language changed, or a translation arrived: show each card in its best version.
  function refreshCards() {
    Array.prototype.forEach.call(feed.children, function (card) {
      var message = messages[card.dataset.pushId];
      if (message) { fill(card, preferred(message.script), message.script, "push-title-" + message.push_id); }
    });
  }

  function showPush(message, unread) {
    if (seen[message.push_id]) { return false; }
    seen[message.push_id] = true;
    // A newer push of the same script replaces the older card (and an older one healed
    // late does not replace a newer one).
    var old = feed.querySelector('[data-script-id="' + message.script.id + '"]');
    if (old && Number(old.dataset.seq) > message.seq) { return false; }
    if (old) { old.remove(); }
    messages[message.push_id] = message;
    upsertLibrary(message.script);
    // Cards stay in seq order, newest on top, whatever order they arrived in.
    var before = Array.prototype.find.call(feed.children, function (card) { return Number(card.dataset.seq) < message.seq; });
    feed.insertBefore(feedCard(message, unread), before || null);
    refreshCards();
    scheduleExpiry(message.script);
    refresh();
    return true;
  }

  // After "Got it", focus goes on to the next card still to read (below, else above), or
  // to the list's heading, never back to the top of the page.
  function focusAfter(card) {
    var unread = Array.prototype.filter.call(feed.children, function (item) {
      return item !== card && !item.hidden && item.classList.contains("script-card--unread");
    });
    var below = unread.filter(function (item) {
      return card.compareDocumentPosition(item) & Node.DOCUMENT_POSITION_FOLLOWING;
    });
    var next = below[0] || unread[0];
    var target = next ? next.querySelector("article") : document.getElementById("feed-title");
    target.focus();
  }

  // --- acknowledgements, retried until the server confirms ----------------------------

  var PENDING_KEY = "cc-pending-acks";
  var pendingAcks = {};

  function savePending() {
    try {
      window.sessionStorage.setItem(PENDING_KEY, JSON.stringify(Object.keys(pendingAcks).map(Number)));
    } catch (err) { /* storage full or refused: retries still run while the page is open */ }
  }

  function setAckState(card, state) {
    var button = card.querySelector(".got-it");
    if (!button) { return; }
    button.disabled = true;
    button.dataset.ackState = state;
    button.textContent = state === "retrying" ? "Not saved yet, retrying…" : "Sending…";
  }

  function ackSaved(card) {
    var button = card.querySelector(".got-it");
    var hadFocus = card.contains(document.activeElement) || document.activeElement === document.body;
    card.classList.remove("script-card--unread");
    var label = card.querySelector(".new-label");
    if (label) { label.remove(); }
    if (button) {
      var saved = document.createElement("p");
      saved.className = "ack-status muted";
      saved.setAttribute("role", "status");
      saved.textContent = "Saved";
      button.replaceWith(saved);
    }
    refresh();
    if (hadFocus) { focusAfter(card); }
  }

  function acknowledge(card, pushId) {
    if (pendingAcks[pushId]) { return; }
    pendingAcks[pushId] = { card: card, wait: RETRY_FIRST, timer: null, sending: false };
    savePending();
    setAckState(card, "sending");
    sendAck(pushId);
  }

  function sendAck(pushId) {
    var entry = pendingAcks[pushId];
    if (!entry || entry.sending) { return; }
    entry.sending = true;
    window.clearTimeout(entry.timer);
    function done(ok, hopeless) {
      entry.sending = false;
      if (pendingAcks[pushId] !== entry) { return; }
      if (ok || hopeless) {
        delete pendingAcks[pushId];
        savePending();
        if (ok) { ackSaved(entry.card); }
        return;
      }
      setAckState(entry.card, "retrying");
      var wait = entry.wait * (0.75 + Math.random() * 0.5);
      entry.wait = Math.min(entry.wait * 2, RETRY_MAX);
      entry.timer = window.setTimeout(function () { sendAck(pushId); }, wait);
    }
    if (socket && socket.connected) {
      socket.timeout(ACK_TIMEOUT).emit(names.SCRIPT_ACK || "script.ack", { push_id: pushId }, function (err, answer) {
        // A refused push id (answer.field) will not get better by retrying.
        done(!err && !!answer && answer.ok === true, !err && !!answer && !!answer.field);
      });
    } else {
      window.ccApi("POST", "/api/v1/pushes/" + pushId + "/ack").then(function () { done(true, false); }, function (error) {
        done(false, !!(error && (error.code === "not_addressed" || error.code === "not_found")));
      });
    }
  }

  function retryAcksNow() {
    Object.keys(pendingAcks).forEach(function (pushId) {
      pendingAcks[pushId].wait = RETRY_FIRST;
      sendAck(Number(pushId));
    });
  }

  // --- healing by sequence ---------------------------------------------------------------

  var catching = null;
  var catchUpWait = RETRY_FIRST;
  var catchUpTimer = null;

  // A push reached the page (live, replayed or fetched): show it, report receipt, chime.
  function arrived(message) {
    if (!showPush(message, true)) { return; }
    // Report receipt after a random 0.2–1.2 s, so a floor of a thousand agents does not
    // answer at the same instant the server is still delivering the push to others.
    var delay = 200 + Math.random() * 1000;
    window.setTimeout(function () {
      if (socket) { socket.emit(names.SCRIPT_RECEIVED || "script.received", { push_id: message.push_id }); }
    }, delay);
    beep();
  }

  // Fetch every push after the cursor (one request at a time); retried with backoff on failure.
  function catchUp() {
    if (catching) { return catching; }
    var after = cursor;
    catching = fetch("/api/v1/pushes?after_seq=" + after, {
      credentials: "same-origin", headers: { Accept: "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (body) {
      var pushes = body.pushes || [];
      pushes.forEach(arrived);
      var newest = pushes.reduce(function (top, m) { return Math.max(top, m.seq); }, after);
      cursor = Math.max(cursor, newest, body.last_seq || 0);
      catchUpWait = RETRY_FIRST;
      feed.dataset.cursor = cursor;
      catching = null;
    }, function (err) {
      catching = null;
      if (!catchUpTimer) {
        catchUpTimer = window.setTimeout(function () { catchUpTimer = null; catchUp().catch(function () {}); }, catchUpWait);
        catchUpWait = Math.min(catchUpWait * 2, RETRY_MAX);
      }
      throw err;
    });
    return catching;
  }

  function received(message) {
    if (seen[message.push_id]) { return; }
    if (message.seq > cursor + 1) {
      // A gap: fetch the missing pushes first so they show in order; this one shows either way.
      var show = function () { arrived(message); };
      catchUp().then(show, show);
      return;
    }
    if (message.seq === cursor + 1) { cursor = message.seq; feed.dataset.cursor = cursor; }
    arrived(message);
  }

  window.setInterval(function () { catchUp().catch(function () {}); }, CHECK_EVERY);
  window.addEventListener("online", function () { catchUp().catch(function () {}); retryAcksNow(); });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") { catchUp().catch(function () {}); }
  });

  function removeScript(scriptId) {
    document.querySelectorAll('#feed [data-script-id="' + scriptId + '"]').forEach(function (el) { el.remove(); });
    forget(scriptId);
    renderLibrary();
    refreshCards();
    refresh();
  }

  function refresh() {
    var unread = feed.querySelectorAll(".script-card--unread").length;
    var badge = document.getElementById("unread-count");
    badge.hidden = unread === 0;
    badge.textContent = unread + " new";
    document.title = (unread ? "(" + unread + ") " : "") + "Scripts · Crisis Console";
    document.getElementById("feed-empty").hidden = feed.children.length > 0;
    document.getElementById("library-empty").hidden = library.children.length + libraryOther.children.length > 0;
    applySearch();
  }

  function applySearch() {
    var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    [feed, library, libraryOther].forEach(function (list) {
      var found = 0;
      Array.prototype.forEach.call(list.children, function (item) {
        var text = item.textContent.toLowerCase();
        var match = words.every(function (w) { return text.indexOf(w) !== -1; });
        item.hidden = !match;
        if (match) { shown += 1; found += 1; }
        if (match && words.length && list !== feed) { item.querySelector("details").open = true; }
      });
      if (list === libraryOther && words.length && found) { otherLanguages.open = true; }
    });
    document.getElementById("no-results").hidden = !(words.length && shown === 0);
  }

  // --- sound ---------------------------------------------------------------------
  // A short WAV made here (no file to fetch): a soft 880 Hz tone, or silence to ask the
  // browser whether it will play sound at all. Browsers refuse play() until the person has
  // used the page; the refusal is the promise rejecting, and then the page says so.

  function wav(seconds, frequency, volume) {
    var rate = 8000;
    var count = Math.round(rate * seconds);
    var bytes = new Uint8Array(44 + count * 2);
    var view = new DataView(bytes.buffer);
    function text(offset, value) { for (var i = 0; i < value.length; i++) { view.setUint8(offset + i, value.charCodeAt(i)); } }
    text(0, "RIFF"); view.setUint32(4, 36 + count * 2, true); text(8, "WAVE"); text(12, "fmt ");
    view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
    view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, count * 2, true);
    for (var n = 0; n < count; n++) {
      var fade = Math.min(1, n / 200, (count - n) / 200);
      view.setInt16(44 + n * 2, Math.round(Math.sin(2 * Math.PI * frequency * n / rate) * 32767 * volume * fade), true);
    }
    var binary = "";
    for (var b = 0; b < bytes.length; b++) { binary += String.fromCharCode(bytes[b]); }
    return "data:audio/wav;base64," + window.btoa(binary);
  }

  var TONE = wav(0.18, 880, 0.25);
  var SILENCE = wav(0.05, 0, 0);
  var soundState = "unknown";

  function setSoundState(state) {
    soundState = state;
    soundToggle.dataset.soundState = state;
    soundBlocked.hidden = !(soundOn && state === "blocked");
  }

  function play(source) {
    var audio = new window.Audio(source);
    var started;
    try { started = audio.play(); } catch (err) { started = Promise.reject(err); }
    return Promise.resolve(started).then(function () { setSoundState("ready"); }, function (err) {
      // NotAllowedError: the browser holds sound back until the person uses the page.
      setSoundState(err && err.name === "NotSupportedError" ? "unsupported" : "blocked");
      throw err;
    });
  }

  function beep() {
    if (!soundOn) { return; }
    play(TONE).then(function () { soundToggle.dataset.lastCue = "played"; }, function () {
      soundToggle.dataset.lastCue = "blocked";
    });
  }

  // Ask once, silently, so an agent knows before the first push whether they would hear it.
  function checkSound() {
    if (!soundOn || soundState === "ready") { setSoundState(soundState); return; }
    play(SILENCE).catch(function () { /* the notice now shows */ });
  }

  function renderSound() {
    soundToggle.textContent = soundOn ? "Sound on" : "Sound off";
    soundToggle.setAttribute("aria-pressed", soundOn ? "true" : "false");
    setSoundState(soundState);
  }

  soundToggle.addEventListener("click", function () {
    soundOn = !soundOn;
    window.localStorage.setItem("cc-sound", soundOn ? "on" : "off");
    renderSound();
    checkSound();
  });
  document.getElementById("sound-enable").addEventListener("click", function () {
    play(TONE).then(function () {
      soundToggle.dataset.lastCue = "played";
      soundToggle.focus();
    }, function () { /* still refused: the notice stays */ });
  });
  // Any use of the page lets the browser play sound: try again then, quietly.
  ["pointerdown", "keydown"].forEach(function (type) {
    document.addEventListener(type, function () {
      if (soundOn && soundState === "blocked") { play(SILENCE).catch(function () {}); }
    }, true);
  });

  // --- offline --------------------------------------------------------------------

  var offlineBanner = document.getElementById("offline-banner");
  document.addEventListener("cc:connection", function (event) {
    var state = event.detail.state;
    if (state === "offline" && offlineBanner.hidden) {
      var since = window.ccTime.format(new Date(), "time");
      offlineBanner.textContent = "Offline since " + since +
        " — scripts on this page may be out of date; reconnecting…";
      offlineBanner.hidden = false;
    } else if (state === "live") {
      offlineBanner.hidden = true;
      offlineBanner.textContent = "";
    }
  });

  // --- language ---------------------------------------------------------------------

  languagePicker.addEventListener("change", function () {
    var chosen = languagePicker.value;
    var before = myLanguage;
    myLanguage = chosen;
    renderLibrary();
    refreshCards();
    refresh();
    window.ccApi("PATCH", "/api/v1/me", { language: chosen }).then(function () {
      languagePicker.dataset.saved = chosen;
    }, function () {
      myLanguage = before;
      languagePicker.value = before;
      renderLibrary();
      refreshCards();
      refresh();
    });
  });
  search.addEventListener("input", applySearch);
  document.addEventListener("keydown", function (event) {
    if (event.key === "/" && document.activeElement !== search) { event.preventDefault(); search.focus(); }
    if (event.key === "Escape" && document.activeElement === search) { search.value = ""; applySearch(); }
  });

  // The library arrives most recently changed first.
  data.library.slice().reverse().forEach(function (script) {
    remember(Object.assign({}, script, { order: ++order }));
    scheduleExpiry(script);
  });
  renderLibrary();
  // The feed arrives newest first; each card goes on top, so show the oldest first.
  data.feed.pushes.slice().reverse().forEach(function (message) { showPush(message, !message.acknowledged); });
  renderSound();
  checkSound();
  refresh();

  document.addEventListener("cc:ready", function (event) {
    socket = event.detail.socket;
    socket.on(names.SCRIPT_PUSHED || "script.pushed", received);
    // Back online: acknowledgements waiting for the store or the network go again at once.
    socket.on("connect", retryAcksNow);
    socket.on(names.SCRIPT_RETIRED || "script.retired", function (message) { removeScript(message.script_id); });
    data.feed.pushes.forEach(function (message) {
      if (!message.acknowledged) { socket.emit(names.SCRIPT_RECEIVED || "script.received", { push_id: message.push_id }); }
    });
    // "Got it" pressed before a reload but never confirmed: send it again.
    var waiting = [];
    try { waiting = JSON.parse(window.sessionStorage.getItem(PENDING_KEY) || "[]"); } catch (err) { waiting = []; }
    waiting.forEach(function (pushId) {
      var card = feed.querySelector('[data-push-id="' + pushId + '"]');
      if (card && card.querySelector(".got-it")) { acknowledge(card, pushId); }
    });
    savePending();
  });
})();
