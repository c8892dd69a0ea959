/* PickEdge dashboard. No build step, no library: plain ES2017 for tablets.
 *
 * Logs in like the PDA page (common.js: the tablet's device key once, then a
 * supervisor's badge; pe.deviceKey / pe.token / pe.picker in localStorage),
 * then reads GET /api/v1/dashboard every POLL_MS and draws it: devices, sync,
 * the floor's figures, two charts as inline SVG (units picked and scan p99
 * per hour), the open alerts with Acknowledge, and the tours in progress on
 * the zone map drawn from GET /api/v1/layout. Every figure comes from the box;
 * ages are the box's clock (at_ms) minus its stamps, never this tablet's clock.
 */
"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var PE = window.PickEdge;
  var POLL_MS = 12000;
  var S = PE.state({ layout: null, data: null, timer: null, loads: 0 });
  var SVG = "http://www.w3.org/2000/svg";
  var COLOURS = ["#1f5fbf", "#c2185b", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#5d4037"];

  // ------------------------------------------------------------------ helpers

  function node(tag, cls, text, parent) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (parent) { parent.appendChild(e); }
    return e;
  }

  function svg(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    parent.appendChild(e);
    return e;
  }

  function clear(e) { while (e.firstChild) { e.removeChild(e.firstChild); } }

  function clock(ms) {
    var d = new Date(ms);
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }

  /* "3 min", "2 h 5 min", from a span in ms */
  function span(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) { return s + " s"; }
    var m = Math.floor(s / 60);
    if (m < 60) { return m + " min"; }
    var h = Math.floor(m / 60);
    if (h < 48) { return h + " h " + (m % 60) + " min"; }
    return Math.floor(h / 24) + " d";
  }

  function since(ms, now) { return ms === null || ms === undefined ? "since ?" : "since " + clock(ms) + " (" + span(now - ms) + ")"; }

  function pct(ratio) { return ratio === null || ratio === undefined ? "–" : (100 * ratio).toFixed(1) + " %"; }

  function metres(m) { return m === null || m === undefined ? "–" : m.toFixed(1) + " m"; }

  function dl(target, rows) {
    clear(target);
    rows.forEach(function (r) {
      node("dt", "", r[0], target);
      var dd = node("dd", r[2] || "", r[1], target);
      if (r[3]) { dd.id = r[3]; }
    });
  }

  function api(method, path, body) { return PE.http(method, path, body, undefined, S.token); }

  // ------------------------------------------------------------------ login

  function screen(name, message) {
    document.body.dataset.screen = name;
    $("btn-logout").hidden = name !== "dashboard" && name !== "refused";
    $("login-error").textContent = message || "";
    if (name === "setup" || name === "login") {
      $("login-label").textContent = name === "setup" ? "Device key of this tablet" : "Scan or type a supervisor's badge";
      $("login-input").type = name === "login" ? "password" : "text";
      $("login-input").value = "";
      $("login-input").focus();
    }
  }

  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var value = $("login-input").value.replace(/[\r\n]+$/, "").trim();
    if (!value) { return; }
    if (!S.deviceKey) {
      S.deviceKey = PE.auth.setDevice(value);
      screen("login");
      return;
    }
    PE.auth.login(S.deviceKey, value, {
      ok: function (token, picker) { S.token = token; S.picker = picker; start(); },
      unknownDevice: function () { S.deviceKey = null; screen("setup", "This tablet is not enrolled: enter its device key"); },
      refused: function (res) { screen("login", PE.errorText(res)); },
      offline: function () { screen("login", "The box cannot be reached"); }
    });
  });

  $("btn-logout").addEventListener("click", function () {
    if (S.token) { PE.auth.logout(S.token); }
    stop();
    PE.auth.clear(); S.token = null; S.picker = null;
    screen("login");
  });

  function stop() { clearTimeout(S.timer); S.timer = null; }

  function start() {
    var role = S.picker && S.picker.role;
    if (role !== "supervisor" && role !== "admin") {
      screen("refused", "Only a supervisor or admin sees the dashboard: log out and scan a supervisor's badge");
      return;
    }
    screen("dashboard");
    $("login-error").textContent = "";
    var layout = S.layout ? Promise.resolve() : api("GET", "/api/v1/layout").then(function (res) {
      if (res.status === 200) { S.layout = res.data; }
    }, function () { return null; });
    layout.then(poll);
  }

  function poll() {
    stop();
    api("GET", "/api/v1/dashboard").then(function (res) {
      if (res.status === 200) {
        PE.showConn(true);
        S.data = res.data;
        render(res.data);
      } else if (res.status === 401) {
        PE.auth.clear(); S.token = null;
        screen("login", "The session ended: scan your badge");
        return;
      } else if (res.status === 403) {
        screen("refused", PE.errorText(res));
        return;
      } else {
        PE.showConn(false);
      }
      S.timer = setTimeout(poll, POLL_MS);
    }, function () {
      PE.showConn(false);
      S.timer = setTimeout(poll, POLL_MS);
    });
  }

  // ------------------------------------------------------------------ drawing

  function render(d) {
    var now = d.at_ms;
    $("box").textContent = d.box ? "· " + d.box : "";
    $("updated").textContent = "updated " + clock(now);
    renderDevices(d.devices, now);
    renderSync(d.sync, now);
    renderQuality(d);
    barChart($("chart-picks"), d.hours, "units");
    lineChart($("chart-p99"), d.hours, "scan_p99_ms");
    renderAlerts(d.alerts, now);
    renderTours(d.tours);
    drawMap(d.tours);
    S.loads += 1;
    document.body.dataset.loads = String(S.loads);
  }

  function renderDevices(devices, now) {
    var list = $("devices");
    clear(list);
    if (!devices.length) { node("li", "muted", "No devices configured", list); return; }
    devices.forEach(function (dev) {
      var li = node("li", "", null, list);
      li.dataset.device = dev.id; li.dataset.state = dev.state;
      node("span", "dot", null, li);
      var text = node("span", "grow", null, li);
      node("strong", "", dev.id, text);
      node("span", "muted", " " + [dev.role, dev.driver].filter(Boolean).join(" · "), text);
      node("span", "device-since muted", dev.state + " " + since(dev.since_ms, now), li);
    });
  }

  function renderSync(s, now) {
    var state = $("sync-state");
    state.dataset.state = s.state;
    state.textContent = { up_to_date: "up to date", sending: "sending", retrying: "retrying", never_synced: "never synced" }[s.state] || s.state;
    dl($("sync"), [
      ["Backlog", s.backlog + " events", s.backlog > 0 ? "" : "", "sync-backlog"],
      ["Oldest unsent", s.oldest_unacked_ms ? span(now - s.oldest_unacked_ms) + " old" : "none"],
      ["Last ack", s.last_ack_ms ? clock(s.last_ack_ms) + " (" + span(now - s.last_ack_ms) + " ago)" : "never"],
      ["Last error", s.last_error || "none", s.last_error ? "bad" : "muted"],
      ["Back-off", s.backoff_s ? s.backoff_s.toFixed(1) + " s" : "none", s.backoff_s ? "bad" : "muted"]
    ]);
  }

  function renderQuality(d) {
    var w = d.walking, e = d.exceptions, a = d.accuracy;
    function both(day, month, fmt) { return fmt(day) + "  (" + fmt(month) + ")"; }
    dl($("quality"), [
      ["Walking saved", both(w["1d"], w["30d"], function (x) { return metres(x.saved_m) + " · " + pct(x.saved_ratio); }), "", "walking-saved"],
      ["Per unit", both(w["1d"], w["30d"], function (x) { return metres(x.per_unit_m) + " vs " + metres(x.single_per_unit_m); })],
      ["Exception rate", both(e["1d"], e["30d"], function (x) { return pct(x.ratio) + " of " + x.tasks + " tasks"; }),
        e["1d"].ratio !== null && e["1d"].ratio > 0.08 ? "bad" : "", "exception-rate"],
      ["Inventory accuracy", both(a["1d"], a["30d"], function (x) { return pct(x.ratio) + " of " + x.counted + " counted"; }), "", "accuracy"]
    ]);
  }

  /* Chart frame: the plot area and a y scale for a maximum. */
  var W = 480, H = 160, L = 34, R = 6, T = 10, B = 22;

  function frame(el, hours, max, unit) {
    clear(el);
    svg("line", { "class": "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }, el);
    var top = svg("text", { x: L - 4, y: T + 4, "text-anchor": "end" }, el);
    top.textContent = String(max);
    var zero = svg("text", { x: L - 4, y: H - B, "text-anchor": "end" }, el);
    zero.textContent = "0";
    var step = (W - L - R) / hours.length;
    hours.forEach(function (h, i) {
      if (i % 6 === 0 || i === hours.length - 1) {
        var t = svg("text", { x: L + i * step + step / 2, y: H - 6, "text-anchor": "middle" }, el);
        t.textContent = clock(h.hour_ms);
      }
    });
    el.dataset.max = String(max);
    el.dataset.unit = unit;
    return { step: step, y: function (v) { return H - B - (H - B - T) * v / max; } };
  }

  function niceMax(values) {
    var m = Math.max.apply(null, values.concat([1]));
    var p = Math.pow(10, Math.floor(Math.log10(m)));
    return [1, 2, 5, 10].map(function (k) { return k * p; }).filter(function (v) { return v >= m; })[0];
  }

  function barChart(el, hours, key) {
    var values = hours.map(function (h) { return h[key] || 0; });
    var f = frame(el, hours, niceMax(values), key);
    hours.forEach(function (h, i) {
      var v = values[i];
      var bar = svg("rect", { "class": "bar", x: L + i * f.step + 1, width: Math.max(1, f.step - 2),
        y: f.y(v), height: f.y(0) - f.y(v), "data-hour": h.hour_ms, "data-value": v }, el);
      svg("title", {}, bar).textContent = clock(h.hour_ms) + ": " + v + " " + key + ", " + h.scans + " scans";
    });
  }

  function lineChart(el, hours, key) {
    var known = hours.filter(function (h) { return h[key] !== null && h[key] !== undefined; });
    var f = frame(el, hours, niceMax(known.map(function (h) { return h[key]; })), "ms");
    if (!known.length) {
      svg("text", { "class": "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, el).textContent = "no scans yet";
      return;
    }
    var pts = [];
    hours.forEach(function (h, i) {
      if (h[key] === null || h[key] === undefined) { return; }
      var x = L + i * f.step + f.step / 2, y = f.y(h[key]);
      pts.push(x + "," + y);
      var dot = svg("circle", { "class": "point", cx: x, cy: y, r: 3.5, "data-hour": h.hour_ms, "data-value": h[key] }, el);
      svg("title", {}, dot).textContent = clock(h.hour_ms) + ": p99 ≤ " + h[key] + " ms over " + h.scans + " scans";
    });
    if (pts.length > 1) { svg("polyline", { "class": "line", points: pts.join(" ") }, el); }
  }

  function renderAlerts(alerts, now) {
    var list = $("alerts");
    clear(list);
    $("alert-count").textContent = String(alerts.length);
    if (!alerts.length) { node("li", "muted", "No open alerts", list); return; }
    alerts.forEach(function (a) {
      var li = node("li", "", null, list);
      li.dataset.alert = a.id; li.dataset.severity = a.severity; li.dataset.acked = String(!!a.acked_by);
      node("span", "sev", a.severity, li);
      var text = node("span", "grow", null, li);
      node("strong", "", a.kind, text);
      node("span", "", " " + a.subject, text);
      node("div", "muted", "raised " + clock(a.raised_ms) + " (" + span(now - a.raised_ms) + " ago)" +
        (a.acked_by ? " · acknowledged by " + a.acked_by + " at " + clock(a.acked_ms) : ""), text);
      if (!a.acked_by) {
        var b = node("button", "ack", "Acknowledge", li);
        b.type = "button";
        b.addEventListener("click", function () { acknowledge(a.id, b); });
      }
    });
  }

  function acknowledge(id, button) {
    button.disabled = true;
    api("POST", "/api/v1/supervisor/alerts/" + id + "/ack").then(function (res) {
      var out = $("alert-result");
      if (res.status === 200) {
        out.dataset.status = "ok";
        out.textContent = "Alert " + id + " acknowledged by " + res.data.alert.acked_by;
      } else {
        out.dataset.status = "error";
        out.textContent = PE.errorText(res);
      }
      poll();
    }, function () { button.disabled = false; });
  }

  function colour(i) { return COLOURS[i % COLOURS.length]; }

  function renderTours(tours) {
    var list = $("tours");
    clear(list);
    $("tour-count").textContent = String(tours.length);
    if (!tours.length) { node("li", "muted", "No tours in progress", list); return; }
    tours.forEach(function (t, i) {
      var li = node("li", t.idle_s >= 600 ? "idle" : "", null, list);
      li.dataset.tour = t.tour;
      node("span", "swatch", null, li).style.background = colour(i);
      var text = node("span", "grow", null, li);
      node("strong", "", "Tour " + t.tour + " · " + (t.picker.name || t.picker.id) + " (" + t.picker.id + ")", text);
      node("div", "muted", t.stops_closed + " of " + t.stops + " stops · " + t.picked + " of " + t.units +
        " units · " + (t.at ? "at " + t.at.location : "at the depot") + " · idle " + span(t.idle_s * 1000), text);
    });
  }

  function drawMap(tours) {
    var el = $("map"), Ly = S.layout;
    clear(el);
    if (!Ly || Ly.kind !== "blocks") { return; }
    var pitch = Ly.aisle_pitch_m, depth = Ly.blocks * Ly.block_length_m;
    var depotX = Ly.depot ? Ly.depot.x : 0;
    var x0 = Math.min(0, depotX), x1 = Math.max((Ly.aisles - 1) * pitch, depotX), m = 3;
    el.setAttribute("viewBox", [x0 - m, -m, x1 - x0 + 2 * m, depth + 2 * m].join(" "));
    var Y = function (y) { return depth - y; };  // the depot at the bottom, like the floor plan
    for (var c = 0; c <= Ly.blocks; c++) {
      svg("line", { "class": "cross", x1: x0, x2: x1, y1: Y(c * Ly.block_length_m), y2: Y(c * Ly.block_length_m) }, el);
    }
    for (var a = 0; a < Ly.aisles; a++) {
      svg("line", { "class": "aisle", x1: a * pitch, x2: a * pitch, y1: Y(0), y2: Y(depth) }, el);
    }
    svg("rect", { "class": "depot", x: depotX - 1, y: Y(0) - 1, width: 2, height: 2 }, el);
    tours.forEach(function (t, i) {
      var fill = colour(i);
      t.remaining.forEach(function (s) {
        if (s.x === null || s.y === null) { return; }
        var dot = svg("circle", { "class": "stop", cx: s.x, cy: Y(s.y), r: 0.6, fill: fill, "data-tour": t.tour }, el);
        svg("title", {}, dot).textContent = "Tour " + t.tour + ": " + s.location + " " + s.sku;
      });
      var at = t.at && t.at.x !== null ? t.at : { x: depotX, y: 0 };
      var me = svg("circle", { "class": "picker", cx: at.x, cy: Y(at.y), r: 0.9, fill: fill, "data-tour": t.tour }, el);
      svg("title", {}, me).textContent = (t.picker.name || t.picker.id) + (t.at ? " at " + t.at.location : " at the depot");
      svg("text", { x: at.x + 1.2, y: Y(at.y) + 0.5 }, el).textContent = t.picker.name || t.picker.id;
    });
  }

  // ------------------------------------------------------------------ start

  if (!S.deviceKey) { screen("setup"); } else if (!S.token) { screen("login"); } else { start(); }
}());
