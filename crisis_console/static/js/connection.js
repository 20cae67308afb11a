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
      statusEl.title = "Since " + new Date().toLocaleTimeString();
    }
    document.dispatchEvent(new CustomEvent("cc:connection", { detail: { state: state } }));
  }

  // Set when this page is being left on purpose (signing out here, following a link), so the
  // server closing the socket then is not mistaken for a session ended elsewhere.
  var leaving = false;
  document.addEventListener("submit", function (event) {
    if (/\/logout$/.test(event.target.action || "")) { leaving = true; }
  });
  window.addEventListener("pagehide", function () { leaving = true; });

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

  var socket = window.io(namespace, {
    transports: ["websocket", "polling"],
    withCredentials: true
  });

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

  window.crisisConsole = {
    socket: socket,
    events: window.CC_EVENTS || {},
    onEvent: function (name, handler) { socket.on(name, handler); }
  };
})();
