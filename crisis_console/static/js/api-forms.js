/*
 * Forms that call the JSON API: <form data-api-url="/api/v1/…" data-api-method="POST"
 * data-after="reload" | "redirect:/manager/scripts/{id}">. Fields become a JSON object
 * (checkboxes become true/false, data-list fields become lists, empty optional fields are
 * left out); the CSRF token from the page's meta tag goes in X-CSRFToken. An error from
 * the API is shown in the form, on the field it names; nothing typed is lost.
 */
(function () {
  "use strict";

  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function formToJson(form) {
    var body = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.disabled || el.type === "submit" || el.name === "csrf_token") { return; }
      if (el.type === "checkbox") { body[el.name] = el.checked; return; }
      var value = el.value;
      if (el.dataset.list !== undefined) {
        body[el.name] = value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
        return;
      }
      if (el.dataset.group) {
        body[el.dataset.group] = body[el.dataset.group] || {};
        if (value.trim()) { body[el.dataset.group][el.name] = value; }
        return;
      }
      if (value === "" && el.dataset.optional !== undefined) { return; }
      if (el.dataset.number !== undefined) { body[el.name] = Number(value); return; }
      if (el.dataset.localTime !== undefined && value) { value = window.ccTime.fromInput(value) || value; }
      body[el.name] = value;
    });
    return body;
  }

  function showError(form, error) {
    var box = form.querySelector(".form-error");
    if (!box) {
      box = document.createElement("p");
      box.className = "form-error field-error";
      box.setAttribute("role", "alert");
      form.insertBefore(box, form.firstChild);
    }
    box.textContent = error.message || "That did not work.";
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    if (error.field && form.elements[error.field]) {
      form.elements[error.field].setAttribute("aria-invalid", "true");
      form.elements[error.field].focus();
    }
  }

  function after(form, result) {
    var next = form.dataset.after || "reload";
    if (next.indexOf("redirect:") === 0) {
      window.location.assign(next.slice(9).replace("{id}", result && result.id));
    } else if (next === "none") {
      form.dispatchEvent(new CustomEvent("api:done", { detail: result, bubbles: true }));
    } else {
      window.location.reload();
    }
  }

  function callApi(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, "Accept": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = text ? JSON.parse(text) : {};
        if (!response.ok) { throw (data.error || { message: response.status + " " + response.statusText }); }
        return data;
      });
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.dataset || !form.dataset.apiUrl) { return; }
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { return; }
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    callApi(form.dataset.apiMethod || "POST", form.dataset.apiUrl, formToJson(form))
      .then(function (result) { after(form, result); })
      .catch(function (error) { showError(form, error); })
      .then(function () { buttons.forEach(function (b) { b.disabled = false; }); });
  });

  window.ccApi = callApi;
})();
