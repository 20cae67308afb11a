/*
 * Phone-line page: spoken-length estimate while typing (warning past the limit), preview of
 * exactly what a caller hears (the webhook's TwiML, read aloud by the browser), and live
 * call statistics.
 */
(function () {
  "use strict";

  var speechEl = document.getElementById("phone-speech");
  var speech = speechEl ? JSON.parse(speechEl.textContent) : { longSeconds: 30, wordsPerSecond: 2.5 };
  var names = window.CC_EVENTS || {};

  function seconds(text) {
    var words = (text.match(/[\p{L}\p{N}_]+/gu) || []).length;
    return Math.round(words / speech.wordsPerSecond);
  }

  document.querySelectorAll("textarea.spoken").forEach(function (area) {
    var hint = document.querySelector('.spoken-length[data-for="' + area.id + '"]');
    function update() {
      var s = seconds(area.value);
      hint.textContent = area.value.trim() ? "About " + s + " s to say." +
        (s > speech.longSeconds ? " Too long: callers hang up on messages over " + speech.longSeconds + " s." : "") : "";
      hint.classList.toggle("field-error", s > speech.longSeconds);
    }
    area.addEventListener("input", update);
    update();
  });

  function say(root) {
    if (!("speechSynthesis" in window)) { return; }
    window.speechSynthesis.cancel();
    root.querySelectorAll("Say").forEach(function (node) {
      var utterance = new SpeechSynthesisUtterance(node.textContent);
      utterance.lang = node.getAttribute("language") || "en-US";
      window.speechSynthesis.speak(utterance);
    });
  }

  document.querySelectorAll("button.preview").forEach(function (button) {
    button.addEventListener("click", function () {
      var box = button.closest(".announcement").querySelector(".preview-box");
      fetch(button.dataset.url, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (preview) {
          box.hidden = false;
          box.querySelector(".twiml").textContent = preview.twiml.replace(/></g, ">\n<");
          say(new DOMParser().parseFromString(preview.twiml, "text/xml"));
        });
    });
  });

  function changed() {
    // The read-only dashboard simply shows the new state; on the manager's page, where
    // something may be half-typed, offer a refresh instead.
    if (!document.getElementById("new-announcement")) { window.location.reload(); return; }
    window.crisisConsole.offerRefresh("announcements-changed", "Announcements changed.");
  }

  function start() {
    window.crisisConsole.onEvent(names.ANNOUNCEMENT_CHANGED || "announcement.changed", changed);
    window.crisisConsole.onEvent(names.ANNOUNCEMENT_STATS || "announcement.stats", function (stats) {
      var item = document.querySelector('[data-announcement-id="' + stats.announcement_id + '"]');
      if (!item) { return; }
      ["calls", "heard", "deflected", "routed"].forEach(function (name) {
        var el = item.querySelector('[data-stat="' + name + '"]');
        if (el) { el.textContent = stats[name]; }
      });
    });
  }
  if (window.crisisConsole && window.crisisConsole.socket) { start(); } else { document.addEventListener("cc:ready", start); }
})();
