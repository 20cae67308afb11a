/*
 * Agent quick-log: the call's category (type-ahead, or Alt+1…6 for the most logged right
 * now) and ZIP code, then Enter. Two keystrokes for the common case; the form stays put
 * and nothing hurries the agent.
 */
(function () {
  "use strict";

  var form = document.getElementById("quick-log");
  if (!form) { return; }
  var category = document.getElementById("log-category");
  var zip = document.getElementById("log-zip");
  var status = document.getElementById("log-status");

  function show(text, isError) {
    status.textContent = text;
    status.className = isError ? "field-error" : "muted";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = { category: category.value.trim() };
    if (zip.value.trim()) { body.zip = zip.value.trim(); }
    window.ccApi("POST", "/api/v1/complaints", body)
      .then(function (result) {
        show("Logged “" + (result.category_name || body.category) + "”" + (body.zip ? " in " + body.zip : "") + " at " +
          window.ccTime.format(new Date(), "time") + ".", false);
        category.value = "";
        zip.value = "";
        category.focus();
      })
      .catch(function (error) {
        show(error.message || "Not logged.", true);
        var field = error.field === "zip" ? zip : category;
        field.setAttribute("aria-invalid", "true");
        field.focus();
      });
  });

  [category, zip].forEach(function (input) {
    input.addEventListener("input", function () { input.removeAttribute("aria-invalid"); });
  });

  var shortcuts = document.querySelectorAll(".shortcut");
  shortcuts.forEach(function (button) {
    button.addEventListener("click", function () {
      category.value = button.dataset.name;
      zip.focus();
    });
  });
  document.addEventListener("keydown", function (event) {
    if (!event.altKey || event.key < "1" || event.key > "9") { return; }
    var button = shortcuts[Number(event.key) - 1];
    if (button) { event.preventDefault(); button.click(); }
  });
})();
