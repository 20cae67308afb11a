/*
 * Local time for every script that shows one: the console's zone (CRISIS_TIMEZONE, from
 * <html data-timezone>), never the browser's, 24-hour, with the zone's abbreviation, as the
 * server writes it: "2015-02-09 14:05 EST". The API's values stay ISO 8601.
 *
 *   ccTime.format(value[, style])   value: ISO string, Date or epoch ms; style: "minute"
 *                                    (default), "seconds", "time" or "date"
 *   ccTime.abbreviation(value)      "EST" / "EDT" at that moment
 *   ccTime.parts(value)             {year, month, day, hour, minute, second, zone} as strings
 *   ccTime.toInput(value)           a datetime-local input's value, in the console's zone
 *   ccTime.fromInput(text)          a datetime-local value read in the console's zone → ISO (UTC)
 */
(function () {
  "use strict";

  var zone = document.documentElement.dataset.timezone || "UTC";
  var formatters = {};

  function formatter(locale) {
    if (!formatters[locale]) {
      formatters[locale] = new Intl.DateTimeFormat(locale, {
        timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
      });
    }
    return formatters[locale];
  }

  function toDate(value) {
    if (value instanceof Date) { return value; }
    if (value === null || value === undefined || value === "") { return null; }
    var date = typeof value === "number" ? new Date(value) : new Date(String(value));
    return isNaN(date.getTime()) ? null : date;
  }

  function read(date, locale) {
    var out = {};
    formatter(locale).formatToParts(date).forEach(function (p) { out[p.type] = p.value; });
    return out;
  }

  // en-US names American zones (EST, PDT); other English locales name their own (CET and BST
  // in en-GB, IST in en-IN, AEDT in en-AU) where en-US says "GMT+1". Where none has a name,
  // the offset is written as the tz database (and so the server) writes it: "-03", "+0545".
  var OTHER_LOCALES = ["en-GB", "en-CA", "en-IN", "en-AU", "en-NZ", "en-ZA", "en-IE", "ja-JP"];
  var OFFSET = /^(?:GMT|UTC)([+\-\u2212])(\d{1,2})(?::(\d\d))?$/;

  function zoneName(date, american) {
    if (!OFFSET.test(american)) { return american; }
    for (var i = 0; i < OTHER_LOCALES.length; i++) {
      var name = read(date, OTHER_LOCALES[i]).timeZoneName;
      if (name && !OFFSET.test(name) && name.indexOf("GMT") !== 0) { return name; }
    }
    var m = OFFSET.exec(american);
    return (m[1] === "+" ? "+" : "-") + ("0" + m[2]).slice(-2) + (m[3] && m[3] !== "00" ? m[3] : "");
  }

  function parts(value) {
    var date = toDate(value);
    if (!date) { return null; }
    var p = read(date, "en-US");
    return {
      year: p.year, month: p.month, day: p.day, hour: p.hour === "24" ? "00" : p.hour,
      minute: p.minute, second: p.second, zone: zoneName(date, p.timeZoneName || "")
    };
  }

  function format(value, style) {
    var p = parts(value);
    if (!p) { return value ? String(value) : ""; }
    var date = p.year + "-" + p.month + "-" + p.day;
    var time = p.hour + ":" + p.minute;
    var text = {
      time: time,
      date: date,
      seconds: date + " " + time + ":" + p.second
    }[style] || date + " " + time;
    return text + " " + p.zone;
  }

  // The zone's offset from UTC at a moment, in minutes (New York in winter: -300).
  function offsetMinutes(date) {
    var p = parts(date);
    var asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
    return Math.round((asUtc - Math.floor(date.getTime() / 1000) * 1000) / 60000);
  }

  function toInput(value) {
    var p = parts(value);
    return p ? p.year + "-" + p.month + "-" + p.day + "T" + p.hour + ":" + p.minute : "";
  }

  // "2015-03-08T14:05" on the console's clock → the UTC instant. The offset is taken twice,
  // so that a wall time just after a DST change uses the offset in force then.
  function fromInput(text) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(String(text || "").trim());
    if (!m) { return null; }
    var wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
    var guess = wall - offsetMinutes(new Date(wall)) * 60000;
    var instant = wall - offsetMinutes(new Date(guess)) * 60000;
    return new Date(instant).toISOString();
  }

  window.ccTime = {
    zone: zone,
    format: format,
    parts: parts,
    abbreviation: function (value) { var p = parts(value || new Date()); return p ? p.zone : ""; },
    toInput: toInput,
    fromInput: fromInput
  };
})();
