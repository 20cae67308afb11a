/*
 * The manager console's "Links that are out": a link just created joins the list (with its
 * Revoke button) without a reload, so the URL shown once stays on screen.
 */
(function () {
  "use strict";

  var form = document.getElementById("share-form");
  var list = document.getElementById("share-links");
  if (!form || !list) { return; }

  form.addEventListener("api:done", function (event) {
    var link = event.detail;
    var esc = window.crisisConsole ? window.crisisConsole.escapeText : function (s) { return String(s); };
    var item = document.createElement("li");
    item.dataset.shareId = link.id;
    item.innerHTML = "<strong>" + esc(link.label || "(no label)") + '</strong> <span class="muted">by ' +
      esc(link.created_by) + ', until <time datetime="' + esc(link.expires_at) + '">' +
      esc(window.ccTime.format(link.expires_at)) + "</time></span> " +
      '<form class="inline" data-api-url="/api/v1/share-links/' + encodeURIComponent(link.id) +
      '" data-api-method="DELETE" data-confirm="Revoke this link? Dashboards open with it stop at once.">' +
      '<button class="button button--small button--danger" type="submit">Revoke</button></form>';
    list.appendChild(item);
    document.getElementById("share-links-empty").hidden = true;
  });
})();
