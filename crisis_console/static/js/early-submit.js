/*
 * A form submitted before the page's scripts have run is held, not lost. The console's
 * forms have no action: their scripts (loaded at the end of the page) send them to the
 * JSON API. An agent who types a category and presses Enter while those scripts are
 * still loading would otherwise send the browser's own GET, reload the page and lose
 * the call. Loaded in <head>, this catches such a submit and replays it once the page's
 * scripts are in (DOMContentLoaded comes after every script at the end of the body).
 */
(function () {
  "use strict";

  var held = null;

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (document.readyState !== "loading" || form.hasAttribute("action") || form.hasAttribute("method")) { return; }
    event.preventDefault();
    event.stopImmediatePropagation();
    held = { form: form, submitter: event.submitter || null };
  }, true);

  document.addEventListener("DOMContentLoaded", function () {
    if (!held || !held.form.isConnected) { return; }
    var form = held.form;
    var submitter = held.submitter;
    held = null;
    form.requestSubmit(submitter && submitter.form === form ? submitter : undefined);
  });
})();
