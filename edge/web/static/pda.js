/* PickEdge PDA page. No build step: plain ES2017 for handheld browsers.
 *
 * One input takes every scan (keyboard-wedge scanners type, then Enter). Scans
 * go into a queue kept in localStorage and are sent one at a time with their
 * scan_id; when the Wi-Fi drops they are retried with the SAME scan_id, so the
 * box counts each unit once however often the answer is lost. The box keeps
 * all picking state: this page only shows what it answers.
 */
"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var ls = window.localStorage;
  var S = {
    deviceKey: ls.getItem("pe.deviceKey"),
    token: ls.getItem("pe.token"),
    picker: JSON.parse(ls.getItem("pe.picker") || "null"),
    queue: JSON.parse(ls.getItem("pe.queue") || "[]"),
    tour: null,
    layout: null,
    busy: false,
    ws: null,
    wsOpen: false,
    wsDelay: 500,
    httpOk: true,
    retryDelay: 500,
    retryTimer: null,
    answers: 0
  };

  // ------------------------------------------------------------------ helpers

  function newScanId() {
    // crypto.randomUUID needs a secure context; a PDA on plain http has none.
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
  }

  function screen(name) {
    document.body.dataset.screen = name;
    $("scan-label").textContent = {
      setup: "Scan or type this PDA's device key",
      login: "Scan your badge",
      pick: "Scan"
    }[name];
    focusScan();
  }

  function focusScan() {
    if ($("short-dialog").hidden) { $("scan").focus(); }
  }

  function saveQueue() {
    ls.setItem("pe.queue", JSON.stringify(S.queue));
    $("queue-count").textContent = String(S.queue.length);
    updateConn();
  }

  function updateConn() {
    var c = $("conn");
    if (S.wsOpen && S.httpOk) {
      c.className = "conn online"; c.textContent = "online";
    } else if (S.queue.length) {
      c.className = "conn retrying"; c.textContent = "offline · " + S.queue.length + " waiting";
    } else {
      c.className = "conn offline"; c.textContent = "offline";
    }
  }

  // ------------------------------------------------------------------ feedback

  var audio = null;
  function beep(kind) {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var tones = { success: [[1320, 0.09]], warning: [[660, 0.14], [660, 0.14]], error: [[220, 0.5]] }[kind];
      var t = audio.currentTime;
      tones.forEach(function (tone) {
        var o = audio.createOscillator(), g = audio.createGain();
        o.type = kind === "error" ? "square" : "sine";
        o.frequency.value = tone[0];
        g.gain.setValueAtTime(0.4, t);
        g.gain.exponentialRampToValueAtTime(0.001, t + tone[1]);
        o.connect(g); g.connect(audio.destination);
        o.start(t); o.stop(t + tone[1]);
        t += tone[1] + 0.06;
      });
    } catch (e) { /* no audio on this device: the flash and buzz still tell */ }
  }

  function buzz(kind) {
    if (navigator.vibrate) {
      navigator.vibrate({ success: 60, warning: [120, 80, 120], error: [400, 120, 400] }[kind]);
    }
  }

  var flashTimer = null;
  function flash(kind) {
    var f = $("flash");
    f.className = kind + " on";
    clearTimeout(flashTimer);
    flashTimer = setTimeout(function () { f.className = kind; }, kind === "error" ? 600 : 250);
  }

  function feedback(kind, message) {
    if (kind !== "success" && kind !== "warning" && kind !== "error") { kind = "error"; }
    document.body.dataset.feedback = kind;
    $("message").textContent = message || "";
    beep(kind); buzz(kind); flash(kind);
  }

  // ------------------------------------------------------------------ HTTP

  function api(method, path, body, extraHeaders) {
    var headers = { "Content-Type": "application/json" };
    if (S.token) { headers.Authorization = "Bearer " + S.token; }
    Object.keys(extraHeaders || {}).forEach(function (k) { headers[k] = extraHeaders[k]; });
    return fetch(path, {
      method: method, headers: headers, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (data) {
        return { status: r.status, data: data };
      });
    });
  }

  function errorText(res) {
    return res.data && res.data.error ? res.data.error.message : "error " + res.status;
  }

  // ------------------------------------------------------------------ scans

  function enqueue(code) {
    S.queue.push({ code: code, scan_id: newScanId(), picker: S.picker ? S.picker.id : null });
    saveQueue();
    processQueue();
  }

  function scheduleRetry() {
    clearTimeout(S.retryTimer);
    S.retryTimer = setTimeout(processQueue, S.retryDelay);
    S.retryDelay = Math.min(S.retryDelay * 2, 4000);
  }

  function processQueue() {
    if (S.busy || !S.queue.length || !S.token) { return; }
    S.busy = true;
    var item = S.queue[0];
    api("POST", "/api/v1/scan", { code: item.code, scan_id: item.scan_id }).then(function (res) {
      S.busy = false;
      if (res.status === 200) {
        S.queue.shift(); saveQueue();
        S.httpOk = true; S.retryDelay = 500; updateConn();
        handleAnswer(res.data);
        processQueue();
      } else if (res.status === 401) {
        loggedOut("Your session ended: scan your badge");
      } else if (res.status >= 500 || res.status === 429) {
        // The box could not confirm it (restarting, disk or outbox full): the
        // scan stays queued and is retried with the same scan_id.
        if (S.httpOk) { feedback("warning", errorText(res) + " — will retry"); }
        S.httpOk = false; updateConn(); scheduleRetry();
      } else {
        S.queue.shift(); saveQueue();
        feedback("error", errorText(res));
        processQueue();
      }
    }, function () {
      // The Wi-Fi dropped: keep the scan, retry it with the same scan_id.
      S.busy = false; S.httpOk = false; updateConn(); scheduleRetry();
    });
  }

  function handleAnswer(a) {
    S.answers += 1;
    document.body.dataset.result = a.result;
    document.body.dataset.answers = String(S.answers);
    if (a.tour !== undefined) { S.tour = a.tour; render(); }
    var message = a.message;
    if (a.result === "tour_done") { message = "Tour complete — scan the next order or START"; }
    feedback(a.feedback, message);
  }

  // ------------------------------------------------------------------ rendering

  function currentStop() {
    var t = S.tour;
    if (!t || t.next_stop === null || t.next_stop === undefined) { return null; }
    for (var i = 0; i < t.stops.length; i++) { if (t.stops[i].stop === t.next_stop) { return t.stops[i]; } }
    return null;
  }

  function render() {
    var t = S.tour, stop = currentStop();
    $("stop-location").textContent = stop ? stop.location : "—";
    $("stop-sku").textContent = stop ? stop.sku : "";
    $("stop-desc").textContent = stop ? stop.description : "";
    $("stop-picked").textContent = stop ? String(stop.picked) : "0";
    $("stop-qty").textContent = stop ? String(stop.qty) : "0";
    $("stop-lot").textContent = stop && stop.lot ? "lot " + stop.lot + (stop.expiry ? " · exp " + stop.expiry : "") : "";
    $("stop-hint").textContent = !stop ? "Scan an order, task, tote or START"
      : stop.state === "pending" ? "Go to " + stop.location + " and scan its label"
      : "Scan the item";
    var stops = t ? t.stops : [];
    var done = stops.filter(function (s) { return s.state === "done" || s.state === "short"; }).length;
    $("done-count").textContent = String(done);
    $("stop-total").textContent = String(stops.length);
    $("route-length").textContent = t && t.route && t.route.length_m !== null ? t.route.length_m.toFixed(1) + " m" : "";
    $("btn-short").disabled = !stop;
    $("btn-skip").disabled = !stop;
    document.body.dataset.tour = t ? t.state : "none";
    drawMap();
  }

  var SVG = "http://www.w3.org/2000/svg";
  function el(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    parent.appendChild(e);
    return e;
  }

  function drawMap() {
    var svg = $("map"), L = S.layout;
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    if (!L || L.kind !== "blocks") { return; }
    var pitch = L.aisle_pitch_m, depth = L.blocks * L.block_length_m;
    var depotX = L.depot ? L.depot.x : 0;
    var x0 = Math.min(0, depotX), x1 = Math.max((L.aisles - 1) * pitch, depotX);
    var m = 3;
    svg.setAttribute("viewBox", [x0 - m, -m, x1 - x0 + 2 * m, depth + 2 * m].join(" "));
    var Y = function (y) { return depth - y; };  // the depot at the bottom, like the floor plan
    for (var c = 0; c <= L.blocks; c++) {
      el("line", { "class": "cross", x1: x0, x2: x1, y1: Y(c * L.block_length_m), y2: Y(c * L.block_length_m) }, svg);
    }
    for (var a = 0; a < L.aisles; a++) {
      el("line", { "class": "aisle", x1: a * pitch, x2: a * pitch, y1: Y(0), y2: Y(depth) }, svg);
    }
    el("rect", { "class": "depot", x: depotX - 1, y: Y(0) - 1, width: 2, height: 2 }, svg);
    var t = S.tour;
    if (!t) { return; }
    var pts = (t.route && t.route.waypoints) || [];
    if (pts.length) {
      el("polyline", { "class": "route", id: "route-line",
        points: pts.map(function (p) { return p[0] + "," + Y(p[1]); }).join(" ") }, svg);
    }
    var here = t.route && t.route.from ? t.route.from : [depotX, 0];
    t.stops.forEach(function (s) {
      if (s.x === null || s.y === null) { return; }
      var cls = "stop " + (s.stop === t.next_stop ? "current" : s.state === "done" ? "done" : s.state === "short" ? "short" : "");
      el("circle", { "class": cls, cx: s.x, cy: Y(s.y), r: s.stop === t.next_stop ? 1.6 : 1.1, "data-stop": s.stop }, svg);
      if (s.stop === t.next_stop) {
        var label = el("text", { x: s.x + 2, y: Y(s.y) + 1 }, svg);
        label.textContent = s.location;
      }
      if (s.state === "done" || s.state === "short") { here = [s.x, s.y]; }
    });
    el("circle", { "class": "me", id: "me", cx: here[0], cy: Y(here[1]), r: 0.8 }, svg);
  }

  // ------------------------------------------------------------------ WebSocket

  function connect() {
    if (!S.token || S.ws) { return; }
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/ws");
    S.ws = ws;
    ws.onopen = function () { ws.send(JSON.stringify({ type: "auth", token: S.token })); };
    ws.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "message" && msg.text === "connected") {
        S.wsOpen = true; S.wsDelay = 500; S.httpOk = true; updateConn(); processQueue();
      } else if (msg.type === "tour_assigned" || msg.type === "tour_rerouted") {
        S.tour = msg.tour; render();
      } else if (msg.type === "task_cancelled") {
        feedback("warning", msg.message || "a task was cancelled");
        loadTour();
      } else if (msg.type === "message" && msg.text) {
        $("message").textContent = msg.text;
      }
    };
    ws.onclose = function (ev) {
      S.ws = null; S.wsOpen = false; updateConn();
      if (ev.code === 4401) { loggedOut("Your session ended: scan your badge"); return; }
      if (S.token) { setTimeout(connect, S.wsDelay); S.wsDelay = Math.min(S.wsDelay * 2, 5000); }
    };
  }

  // ------------------------------------------------------------------ session

  function loadTour() {
    return api("GET", "/api/v1/tour").then(function (res) {
      if (res.status === 200) { S.tour = res.data; } else if (res.status === 404) { S.tour = null; }
      render();
    }, function () { render(); });
  }

  function startPicking() {
    $("who").textContent = S.picker ? S.picker.name : "PickEdge";
    screen("pick");
    api("GET", "/api/v1/layout").then(function (res) {
      if (res.status === 200) { S.layout = res.data; }
      return loadTour();
    }, function () { render(); });
    connect();
    processQueue();
  }

  function loggedOut(message) {
    S.token = null; S.picker = null; S.tour = null;
    ls.removeItem("pe.token"); ls.removeItem("pe.picker");
    if (S.ws) { S.ws.close(); }
    $("who").textContent = "PickEdge";
    screen("login");
    if (message) { feedback("warning", message); }
  }

  function login(badge) {
    api("POST", "/api/v1/sessions", { badge: badge }, { "X-Device-Key": S.deviceKey }).then(function (res) {
      if (res.status === 201) {
        S.token = res.data.token; S.picker = res.data.picker;
        var others = S.queue.filter(function (q) { return q.picker !== S.picker.id; });
        if (others.length) {
          // Scans of another picker were never confirmed (no OK was shown): they
          // must not be counted under this badge.
          S.queue = S.queue.filter(function (q) { return q.picker === S.picker.id; });
          saveQueue();
        }
        ls.setItem("pe.token", S.token); ls.setItem("pe.picker", JSON.stringify(S.picker));
        S.httpOk = true;
        feedback("success", "Hello " + S.picker.name);
        startPicking();
      } else if (res.data && res.data.error && res.data.error.code === "unknown_device") {
        S.deviceKey = null; ls.removeItem("pe.deviceKey");
        screen("setup");
        feedback("error", "This PDA is not enrolled: scan its device key");
      } else {
        feedback("error", errorText(res));
      }
    }, function () { S.httpOk = false; updateConn(); feedback("error", "No connection to the box"); });
  }

  // ------------------------------------------------------------------ events

  $("scan-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var input = $("scan"), value = input.value.replace(/[\r\n]+$/, "");
    input.value = "";
    if (!value) { return; }
    var mode = document.body.dataset.screen;
    if (mode === "setup") {
      S.deviceKey = value.trim(); ls.setItem("pe.deviceKey", S.deviceKey);
      screen("login");
    } else if (mode === "login") {
      login(value);
    } else {
      enqueue(value);
    }
  });

  $("btn-short").addEventListener("click", function () {
    var stop = currentStop();
    if (!stop) { return; }
    $("short-what").textContent = stop.qty + " × " + stop.sku + " at " + stop.location;
    $("short-found").value = String(stop.picked);
    $("short-found").min = String(stop.picked);
    $("short-found").max = String(stop.qty - 1);
    $("short-dialog").hidden = false;
    $("short-found").focus();
  });

  function closeShort() { $("short-dialog").hidden = true; focusScan(); }
  $("short-cancel").addEventListener("click", closeShort);

  Array.prototype.forEach.call(document.querySelectorAll("#short-dialog [data-reason]"), function (b) {
    b.addEventListener("click", function () {
      var stop = currentStop();
      var found = parseInt($("short-found").value, 10);
      closeShort();
      if (!stop || isNaN(found)) { return; }
      api("POST", "/api/v1/tour/short", { stop: stop.stop, found: found, reason: b.dataset.reason }).then(function (res) {
        if (res.status === 200) { handleAnswer(res.data); } else { feedback("error", errorText(res)); }
      }, function () { feedback("error", "No connection: try the short pick again"); });
    });
  });

  $("btn-skip").addEventListener("click", function () {
    var stop = currentStop();
    if (!stop) { return; }
    api("POST", "/api/v1/tour/skip", { stop: stop.stop }).then(function (res) {
      if (res.status === 200) { handleAnswer(res.data); } else { feedback("error", errorText(res)); }
    }, function () { feedback("error", "No connection: try again"); });
    focusScan();
  });

  $("btn-logout").addEventListener("click", function () {
    api("DELETE", "/api/v1/sessions").catch(function () { return null; });
    loggedOut("");
  });

  // Keep the scan input focused: a wedge scanner types wherever the focus is.
  document.addEventListener("click", function (ev) {
    if (ev.target.tagName !== "INPUT") { focusScan(); }
  });
  $("scan").addEventListener("blur", function () { setTimeout(focusScan, 0); });
  window.addEventListener("online", function () { S.retryDelay = 500; processQueue(); connect(); });
  window.addEventListener("offline", function () { S.httpOk = false; updateConn(); });

  // ------------------------------------------------------------------ start

  saveQueue();
  if (!S.deviceKey) { screen("setup"); } else if (!S.token) { screen("login"); } else { startPicking(); }
}());
