/*
 * Dashboard: the last hour's contacts by category, re-read from the counters whenever the
 * server says new complaints were counted (at most once a second), without reloading.
 */
(function () {
  "use strict";

  var names = JSON.parse(document.getElementById("category-names").textContent);
  var events = window.CC_EVENTS || {};
  var timer = null;

  function render(result) {
    var rows = Object.keys(result.totals)
      .filter(function (code) { return code !== "all" && result.totals[code] > 0; })
      .map(function (code) { return [code, result.totals[code]]; })
      .sort(function (a, b) { return b[1] - a[1]; })
      .slice(0, 15);
    var esc = window.crisisConsole.escapeText;
    var body = document.querySelector("#counts tbody");
    body.innerHTML = rows.length ? rows.map(function (row) {
      var width = (100 * row[1] / rows[0][1]).toFixed(1);
      return '<tr data-category="' + esc(row[0]) + '"><td>' + esc(names[row[0]] || row[0]) +
        '</td><td class="count">' + row[1] + '</td><td><span class="bar" data-width="' + width + '"></span></td></tr>';
    }).join("") : '<tr class="empty"><td colspan="3" class="muted">No contacts logged in the last hour.</td></tr>';
    window.ccPage.widths(body);
    document.getElementById("contacts-total").textContent = result.totals.all;
  }

  var chart = null;
  var PALETTE = ["#0b2545", "#a4161a", "#0a6b2d", "#b45309", "#6d28d9", "#0e7490"];
  // The time axis and legend on the console's clock (CRISIS_TIMEZONE), 24-hour. tzDate puts
  // uPlot's tick positions on that zone's hours; the labels come from ccTime. The last labels
  // drawn are kept on the chart element (data-time-ticks), for the tests and for debugging.
  var DAY = 86400;
  function tickLabels(u, splits, _axis, _space, incr) {
    var lastDay = null;
    var labels = splits.map(function (ts) {
      var p = window.ccTime.parts(ts * 1000);
      if (!p) { return ""; }
      var day = p.year + "-" + p.month + "-" + p.day;
      var label = incr >= DAY ? p.month + "-" + p.day : p.hour + ":" + p.minute + (incr < 60 ? ":" + p.second : "");
      if (incr < DAY && day !== lastDay) { label += "\n" + day; }
      lastDay = day;
      return label;
    });
    u.root.parentNode.dataset.timeTicks = labels.join(" | ").replace(/\n/g, " ");
    return labels;
  }
  function inZone(ts) { return window.uPlot.tzDate(new Date(ts * 1000), window.ccTime.zone); }
  function timeSeries() {
    return { label: "Time", value: function (_u, ts) { return ts == null ? "—" : window.ccTime.format(ts * 1000); } };
  }
  function timeAxis(xs) {
    return { values: tickLabels, label: "Time (" + window.ccTime.abbreviation(xs.length ? xs[xs.length - 1] * 1000 : new Date()) + ")" };
  }

  // "Since the event was declared": a window from the declaration to now, in about 150 buckets.
  function windowChoice(select) {
    if (select.value !== "event") { return select.value.split("|"); }
    var since = Date.parse(select.selectedOptions[0].dataset.since);
    var minutes = Math.max(10, Math.ceil((Date.now() - since) / 60000));
    var steps = [[1, "1m"], [5, "5m"], [15, "15m"], [60, "1h"], [360, "6h"], [1440, "1d"]];
    var step = steps.find(function (s) { return s[0] >= minutes / 150; }) || steps[steps.length - 1];
    if (step[0] >= 60) { minutes = Math.ceil(minutes / step[0]) * step[0]; }
    var window_ = minutes <= 9999 ? minutes + "m" : Math.ceil(minutes / 60) + "h";
    return [window_, step[1]];
  }

  function drawChart() {
    var el = document.getElementById("chart");
    if (!el || typeof window.uPlot !== "function") { return; }
    var selector = document.getElementById("chart-window");
    var choice = windowChoice(selector);
    // The printed report has no selector: it says in words which window the chart shows.
    var printed = document.getElementById("chart-window-print");
    var label = selector.selectedOptions[0].textContent;
    if (printed) { printed.textContent = label.charAt(0).toUpperCase() + label.slice(1) + "."; }
    fetch("/api/v1/trends?window=" + choice[0] + "&bucket=" + choice[1], { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (result) {
        if (!result) { return; }
        var xs = result.buckets.map(function (iso) { return Date.parse(iso) / 1000; });
        var top = Object.keys(result.series)
          .sort(function (a, b) { return result.totals[b] - result.totals[a]; })
          .slice(0, 5);
        var total = xs.map(function (_x, i) {
          return Object.keys(result.series).reduce(function (sum, code) { return sum + result.series[code][i]; }, 0);
        });
        var data = [xs, total].concat(top.map(function (code) { return result.series[code]; }));
        var series = [timeSeries(), { label: "All contacts", stroke: PALETTE[0], width: 3 }].concat(top.map(function (code, i) {
          return { label: names[code] || code, stroke: PALETTE[(i + 1) % PALETTE.length], width: 2 };
        }));
        if (chart) { chart.destroy(); }
        chart = new window.uPlot({ width: el.clientWidth || 800, height: 280, tzDate: inZone, series: series, axes: [timeAxis(xs), { label: "contacts" }] }, data, el);
      })
      .catch(function () {});
  }

  function renderMovers(result) {
    var esc = window.crisisConsole.escapeText;
    var body = document.querySelector("#movers tbody");
    if (!body) { return; }
    body.innerHTML = result.movers.length ? result.movers.map(function (m) {
      return '<tr data-category="' + esc(m.category) + '"><td>' + esc(names[m.category] || m.category) +
        '</td><td class="count">' + m.observed + '</td><td class="count">' + m.expected +
        '</td><td class="count">' + (m.ratio === null ? "new" : m.ratio) + "</td></tr>";
    }).join("") : '<tr class="empty"><td colspan="4" class="muted">Nothing above its usual level.</td></tr>';
  }

  function refresh() {
    timer = null;
    drawChart();
    fetch("/api/v1/trends/movers?window=60m", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (result) { if (result) { renderMovers(result); } })
      .catch(function () {});
    fetch("/api/v1/trends?window=60m&bucket=60m", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (result) { if (result) { render(result); } })
      .catch(function () {});
  }

  var selector = document.getElementById("chart-window");
  if (selector) { selector.addEventListener("change", drawChart); }
  window.addEventListener("resize", function () { if (chart) { chart.setSize({ width: document.getElementById("chart").clientWidth, height: 280 }); } });
  drawChart();

  function start() {
    window.crisisConsole.onEvent(events.ALERT_SENT || "alert.sent", function (message) {
      var list = document.getElementById("notices"), a = message.alert;
      if (!list || list.querySelector('[data-alert-id="' + a.id + '"]')) { return; }
      var item = document.createElement("li");
      item.dataset.alertId = a.id;
      item.textContent = window.ccTime.format(a.created_at) + " — " + a.message;
      list.insertBefore(item, list.firstChild);
      document.getElementById("notices-empty").hidden = true;
    });
    window.crisisConsole.onEvent(events.TRENDS_UPDATE || "trends.update", function () {
      if (!timer) { timer = window.setTimeout(refresh, 1000); }
    });
    window.crisisConsole.socket.on("connect", refresh);  // catch up after a reconnection
  }
  if (window.crisisConsole && window.crisisConsole.socket) { start(); } else { document.addEventListener("cc:ready", start); }
})();
