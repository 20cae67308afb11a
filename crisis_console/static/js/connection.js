/*
 * Live connection for every signed-in page: connects to the page's Socket.IO namespace
 * (body[data-socket-namespace]) with the session cookie, keeps the header's indicator
 * honest, and returns to the sign-in page when the server ends the session.
 * Page scripts subscribe with window.crisisConsole.onEvent(name, handler).
 */
(function () {
  "use strict";

  var statusEl = document.getElementById("connection-status");
  var namespace = document.body.dataset.socketNamespace || "";
  var STATES = {
    connecting: "Connecting…",
    live: "Live",
    offline: "Offline — reconnecting…"
  };

  function setState(state) {
    if (statusEl) {
      statusEl.className = "connection connection--" + state;
      statusEl.textContent = STATES[state];
      statusEl.title = "Since " + window.ccTime.format(new Date(), "seconds");
    }
    document.dispatchEvent(new CustomEvent("cc:connection", { detail: { state: state } }));
  }

  // Set when this page is being left on purpose (signing out here, following a link), so the
  // server closing the socket then is not mistaken for a session ended elsewhere.
  var leaving = false;
  document.addEventListener("submit", function (event) {
    // A form marked data-leaves-page (changing one's password) ends this user's sockets too.
    if (/\/logout$/.test(event.target.action || "") || event.target.hasAttribute("data-leaves-page")) {
      leaving = true;
    }
  });
  window.addEventListener("pagehide", function () { leaving = true; });
  // Back from the back/forward cache: the page is in use again, so a later kick must count.
  window.addEventListener("pageshow", function (event) { if (event.persisted) { leaving = false; } });

  function backToSignIn() {
    if (leaving) { return; }
    var here = window.location.pathname + window.location.search;
    window.location.assign("/login?next=" + encodeURIComponent(here).replace(/%2F/g, "/"));
  }

  if (!namespace || typeof window.io !== "function") {
    if (statusEl) { statusEl.hidden = true; }
    window.crisisConsole = { socket: null, onEvent: function () {} };
    return;
  }

  var options = { transports: ["websocket", "polling"], withCredentials: true };
  // A page may add to the handshake (the agent page sends the last push it saw); socket.io
  // calls this again on every reconnection, so missed pushes are replayed each time.
  if (typeof window.ccSocketAuth === "function") { options.auth = window.ccSocketAuth; }
  var socket = window.io(namespace, options);

  setState("connecting");
  socket.on("connect", function () { setState("live"); });
  socket.on("disconnect", function (reason) {
    if (reason === "io server disconnect") {
      // The server closed this socket on purpose: signed out elsewhere, disabled, role changed.
      setState("offline");
      backToSignIn();
      return;
    }
    setState("offline");
  });
  socket.on("connect_error", function (err) {
    var message = err && err.message;
    if (message === "unauthorized" || message === "forbidden") {
      socket.disconnect();
      backToSignIn();
      return;
    }
    setState("offline");
  });

  // Active events show in the banner on every page; reload them when one changes.
  function escapeText(text) {
    var div = document.createElement("div");
    div.textContent = text == null ? "" : String(text);
    return div.innerHTML;
  }

  function renderBanner(events) {
    var banner = document.getElementById("event-banner");
    if (!banner) { return; }
    banner.innerHTML = events.map(function (event) {
      var parts = ["<strong>" + escapeText(event.name) + "</strong>", escapeText(event.severity)];
      if (event.areas && event.areas.length) { parts.push(escapeText(event.areas.join(", "))); }
      if (event.details && event.details.hotline) { parts.push("hotline " + escapeText(event.details.hotline)); }
      var label = event.exercise ? '<strong class="exercise-label">EXERCISE</strong> — ' : "";
      return '<p class="event-banner__item">' + label + parts.join(" · ") + "</p>";
    }).join("");
    banner.hidden = events.length === 0;
    // While any drill runs, every page carries the EXERCISE banner above the events.
    var drill = document.getElementById("exercise-banner");
    if (drill) { drill.hidden = !events.some(function (event) { return event.exercise; }); }
  }

  socket.on((window.CC_EVENTS || {}).EVENT_CHANGED || "event.changed", function () {
    fetch("/api/v1/events?status=active", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : { events: [] }; })
      .then(function (body) { renderBanner(body.events || []); })
      .catch(function () { /* the next change or reload will correct the banner */ });
  });

  // Something changed elsewhere: offer a refresh rather than reloading under the user's hands.
  function offerRefresh(id, text) {
    if (document.getElementById(id)) { return; }
    var note = document.createElement("div");
    note.id = id;
    note.className = "flash flash--info";
    note.setAttribute("role", "status");
    note.innerHTML = escapeText(text) + ' <button class="button button--small" type="button">Refresh</button>';
    note.querySelector("button").addEventListener("click", function () { window.location.reload(); });
    var main = document.getElementById("main");
    main.insertBefore(note, main.firstChild);
  }

  window.crisisConsole = {
    socket: socket,
    events: window.CC_EVENTS || {},
    escapeText: escapeText,
    offerRefresh: offerRefresh,
    onEvent: function (name, handler) { socket.on(name, handler); }
  };
  document.dispatchEvent(new CustomEvent("cc:ready", { detail: { socket: socket } }));
})();
