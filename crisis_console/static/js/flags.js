/*
 * Agent flags, "I keep hearing about…".
 * On the agent page: the button, or F while focus is not in a text field, opens a dialog that
 * sends POST /api/v1/flags; Escape or Cancel closes it and focus goes back where it was. Nothing
 * in it counts down or hurries the agent; a quiet line beside the button confirms.
 * On the manager console and the dashboard: the "Heard by agents (last hour)" panel, read from
 * GET /api/v1/flags and kept live by flag.raised / flag.changed; on the console each group can
 * be promoted to a category or dismissed. Agent text is only ever set as text, never as HTML.
 */
(function () {
  "use strict";

  var names = window.CC_EVENTS || {};

  // The pages' one JSON API caller (api-forms.js): CSRF token, JSON body, errors as {message, field}.
  function api(method, url, body) { return window.ccApi(method, url, body); }

  // The console's clock (CRISIS_TIMEZONE), 24-hour; the zone's abbreviation when asked.
  function clock(iso, withZone) {
    if (!iso) { return ""; }
    var p = window.ccTime.parts(iso);
    return p.hour + ":" + p.minute + (withZone ? " " + p.zone : "");
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function whenLive(callback) {
    var ready = window.crisisConsole && window.crisisConsole.socket;
    if (ready) { callback(window.crisisConsole.socket); return; }
    document.addEventListener("cc:ready", function (event) { callback(event.detail.socket); });
  }

  // --- the agent's dialog --------------------------------------------------------------

  function setUpDialog() {
    var dialog = document.getElementById("flag-dialog");
    var opener = document.getElementById("flag-open");
    var template = document.getElementById("flag-form-template");
    if (!dialog || !opener || !template) { return; }
    var status = document.getElementById("flag-status");
    var returnTo = null;

    function wire() {
      var form = dialog.querySelector("form");
      var text = form.elements.text;
      var category = form.elements.category;
      var zip = form.elements.zip;
      var error = form.querySelector("#flag-error");
      var send = form.querySelector('button[type="submit"]');

      function showError(message, field) {
        error.textContent = message;
        error.hidden = false;
        field.setAttribute("aria-invalid", "true");
        field.focus();
      }

      [text, category, zip].forEach(function (field) {
        field.addEventListener("input", function () { field.removeAttribute("aria-invalid"); });
      });
      form.querySelector("#flag-cancel").addEventListener("click", function () { dialog.close(); });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        error.hidden = true;
        var body = { text: text.value.trim() };
        if (!body.text) { showError("Say in a few words what callers keep raising.", text); return; }
        if (category.value) { body.category = category.value; }
        if (zip.value.trim()) { body.zip = zip.value.trim(); }
        send.disabled = true;
        send.textContent = "Sending…";
        api("POST", "/api/v1/flags", body)
          .then(function (flag) {
            dialog.close();
            status.textContent = flag.duplicate
              ? "Already sent a moment ago; it counts once."
              : "Sent at " + clock(flag.at) + " — thank you.";
          })
          .catch(function (err) {
            var fields = { text: text, category: category, zip: zip };
            var plain = {
              zip: "A ZIP code has 5 digits, like 02124 (or leave it empty).",
              category: "Pick a category from the list, or leave it at (none)."
            };
            send.disabled = false;
            send.textContent = "Send to the manager";
            showError(plain[err.field] || err.message || "Not sent. Try again.", fields[err.field] || text);
          });
      });
      return text;
    }

    function open() {
      if (dialog.open) { return; }
      returnTo = document.activeElement;
      dialog.replaceChildren(template.content.cloneNode(true));
      var text = wire();
      dialog.showModal();
      text.focus();
    }

    dialog.addEventListener("close", function () {
      dialog.replaceChildren();
      var target = returnTo && returnTo !== document.body && document.contains(returnTo) ? returnTo : null;
      returnTo = null;
      if (target) { target.focus(); }
    });
    opener.addEventListener("click", open);
    // Keys typed in the dialog are the agent's words: the page's own shortcuts (/ for search,
    // Alt+1…9 for categories) listen on the document and must not see them.
    dialog.addEventListener("keydown", function (event) { event.stopPropagation(); });

    document.addEventListener("keydown", function (event) {
      if (event.key !== "f" && event.key !== "F") { return; }
      if (event.ctrlKey || event.metaKey || event.altKey || event.repeat || event.defaultPrevented) { return; }
      var target = event.target;
      var typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
      if (typing || dialog.open) { return; }
      event.preventDefault();
      open();
    });
  }

  // --- the panel on the console and the dashboard --------------------------------------

  function setUpPanel() {
    var panel = document.getElementById("flags-panel");
    if (!panel) { return; }
    var list = document.getElementById("flag-groups");
    var empty = document.getElementById("flag-groups-empty");
    var status = document.getElementById("flag-groups-status");
    var manage = panel.dataset.manage === "1";
    var url = "/api/v1/flags?window=" + encodeURIComponent(panel.dataset.window || "60m");
    var groups = {};

    var namesEl = document.getElementById("category-names");
    var catalogue = namesEl ? JSON.parse(namesEl.textContent || "{}") : {};
    var NONE_OPEN = "No open flags from agents in the last hour.";

    if (manage) {
      // Offer the catalogue's names when naming a category: picking one counts the flags there.
      var datalist = el("datalist");
      datalist.id = "flag-category-choices";
      Object.keys(catalogue).forEach(function (code) {
        var option = el("option");
        option.value = catalogue[code];
        datalist.appendChild(option);
      });
      panel.appendChild(datalist);
    }

    function suggestedName(text) {
      var name = text.trim().replace(/[.!?]+$/, "").slice(0, 120);
      return name.charAt(0).toUpperCase() + name.slice(1);
    }

    function describe(group) {
      var parts = [
        group.count + (group.count === 1 ? " agent" : " agents"),
        "first " + clock(group.first_at),
        "last " + clock(group.last_at, true)
      ];
      if (group.zips && group.zips.length) { parts.push("ZIP " + group.zips.join(", ")); }
      if (group.categories && group.categories.length) {
        parts.push("filed under " + group.categories.map(function (code) { return catalogue[code] || code; }).join(", "));
      }
      return parts.join(" · ");
    }

    function act(item, group, action, body) {
      var buttons = item.querySelectorAll("button");
      buttons.forEach(function (b) { b.disabled = true; });
      var error = item.querySelector(".field-error");
      error.hidden = true;
      api("POST", "/api/v1/flags/" + group.id + "/" + action, body)
        .then(function (result) {
          if (result.category) { catalogue[result.category.code] = result.category.name; }
          remove(group.id);
          status.textContent = action === "promote"
            ? "“" + group.text + "” now counts as " + result.category.name + ": " +
              result.complaints + (result.complaints === 1 ? " complaint" : " complaints") + " added."
            : "Dismissed “" + group.text + "”.";
        })
        .catch(function (err) {
          error.textContent = err.message || "That did not work.";
          error.hidden = false;
          var field = err.field === "name" || err.field === "code" ? item.querySelector("input") : null;
          if (field) { field.setAttribute("aria-invalid", "true"); field.focus(); }
          buttons.forEach(function (b) { b.disabled = false; });
        });
    }

    function build(group) {
      var item = el("li", "flag-group");
      item.dataset.groupId = group.id;
      var head = el("p", "flag-group__text");
      head.id = "flag-text-" + group.id;
      head.appendChild(el("strong", "", "“" + group.text + "”"));
      item.appendChild(head);
      item.appendChild(el("p", "flag-group__meta"));
      item.appendChild(el("p", "flag-group__also muted"));
      if (manage) {
        var form = el("form", "flag-group__actions");
        var id = "flag-name-" + group.id;
        var label = el("label", "", "Category name");
        label.appendChild(el("span", "visually-hidden", " for “" + group.text + "”"));
        label.htmlFor = id;
        var input = el("input");
        input.id = id;
        input.name = "name";
        input.maxLength = 120;
        input.required = true;
        input.value = suggestedName(group.text);
        input.setAttribute("list", "flag-category-choices");
        input.addEventListener("input", function () { input.removeAttribute("aria-invalid"); });
        var promote = el("button", "button button--small button--primary", "Promote to category");
        promote.type = "submit";
        var dismiss = el("button", "button button--small", "Dismiss");
        dismiss.type = "button";
        promote.setAttribute("aria-describedby", head.id);
        dismiss.setAttribute("aria-describedby", head.id);
        form.appendChild(label);
        form.appendChild(input);
        form.appendChild(promote);
        form.appendChild(dismiss);
        form.addEventListener("submit", function (event) {
          event.preventDefault();
          var name = input.value.trim();
          act(item, groups[group.id] || group, "promote", name ? { name: name } : {});
        });
        dismiss.addEventListener("click", function () { act(item, groups[group.id] || group, "dismiss"); });
        item.appendChild(form);
        var error = el("p", "field-error");
        error.setAttribute("role", "alert");
        error.hidden = true;
        item.appendChild(error);
      }
      return item;
    }

    function update(item, group) {
      item.querySelector(".flag-group__meta").textContent = describe(group);
      var others = (group.texts || []).filter(function (t) { return t !== group.text; });
      var also = item.querySelector(".flag-group__also");
      also.textContent = others.length ? "Also: " + others.map(function (t) { return "“" + t + "”"; }).join(" · ") : "";
      also.hidden = others.length === 0;
    }

    function order(a, b) {
      return (b.count - a.count) || ((b.last_at || "") < (a.last_at || "") ? -1 : 1);
    }

    function itemFor(id) { return list.querySelector('[data-group-id="' + id + '"]'); }

    function place(item, group) {
      // Only new groups are placed by rank: moving an item would take the focus out of a name
      // a manager is typing, so existing ones stay put until the next full reading.
      var before = null;
      Array.prototype.some.call(list.children, function (other) {
        var theirs = groups[other.dataset.groupId];
        if (theirs && order(group, theirs) < 0) { before = other; return true; }
        return false;
      });
      list.insertBefore(item, before);
    }

    function show(group, fresh) {
      if (group.status !== "open" || !group.count) { remove(group.id); return; }
      var item = itemFor(group.id);
      groups[group.id] = group;
      if (!item) {
        item = build(group);
        place(item, group);
      }
      update(item, group);
      item.classList.toggle("flag-group--new", !!fresh);
      empty.hidden = true;
    }

    function remove(id) {
      var item = itemFor(id);
      if (item) { item.remove(); }
      delete groups[id];
      empty.hidden = list.children.length > 0;
      empty.textContent = NONE_OPEN;
    }

    function reload() {
      return api("GET", url).then(function (body) {
        var seen = {};
        var busy = list.contains(document.activeElement);
        body.groups.forEach(function (group) { seen[group.id] = true; });
        Object.keys(groups).forEach(function (id) { if (!seen[id]) { remove(id); } });
        body.groups.forEach(function (group) { show(group, false); });
        if (!busy) {
          body.groups.forEach(function (group) { list.appendChild(itemFor(group.id)); });
        }
        empty.textContent = NONE_OPEN;
        empty.hidden = list.children.length > 0;
        panel.dataset.loaded = "1";
      }).catch(function () {
        empty.textContent = "Could not read the flags; they will be read again in a minute.";
        empty.hidden = list.children.length > 0;
      });
    }

    reload();
    // Flags leave "the last hour" as time passes, so read the panel again every minute.
    window.setInterval(reload, 60000);
    whenLive(function (socket) {
      socket.on(names.FLAG_RAISED || "flag.raised", function (message) { show(message.group, true); });
      socket.on(names.FLAG_CHANGED || "flag.changed", function (message) {
        var group = message.group;
        var had = groups[group.id];
        show(group, false);
        if (had && group.status === "promoted") {
          if (group.category_name) { catalogue[group.category] = group.category_name; }
          status.textContent = "“" + group.text + "” now counts as " + (group.category_name || group.category) +
            (manage && group.closed_by ? " (" + group.closed_by + ")" : "") + ".";
        } else if (had && group.status === "dismissed") {
          status.textContent = "“" + group.text + "” was dismissed" +
            (manage && group.closed_by ? " by " + group.closed_by : "") + ".";
        }
      });
      // Back after a break in the connection: read what was missed.
      socket.on("connect", function () { if (panel.dataset.loaded) { reload(); } });
    });
  }

  setUpDialog();
  setUpPanel();
})();
