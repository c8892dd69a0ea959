/* PickEdge pack station page. No build step: plain ES2017 for tablets and PDAs.
 *
 * The box keeps the station's state; this page shows what it answers. One input
 * takes every scan (keyboard-wedge scanners type, then Enter); CLOSE, REPRINT
 * and RELEASE are scans too. Scans go into a queue kept in localStorage and are
 * sent one at a time with their scan_id; when the network drops they are
 * retried with the SAME scan_id, so the box packs each unit once however often
 * the answer is lost. The station's fixed scanner answers arrive as WebSocket
 * `station` pushes.
 *
 * The login (device key once, then badge) is a minimal copy of pda.js's and
 * shares its localStorage keys: one PDA, one session, either page.
 */
"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var ls = window.localStorage;
  var S = {
    deviceKey: ls.getItem("pe.deviceKey"),
    token: ls.getItem("pe.token"),
    picker: JSON.parse(ls.getItem("pe.picker") || "null"),
    station: null,
    queue: JSON.parse(ls.getItem("pe.packQueue") || "[]"),
    view: null,       // the station as the box last answered
    done: null,       // the order just shipped (the box frees the station)
    held: [],         // pushes that arrived while our own scan was unanswered
    expect: [],       // our answers whose push has not arrived yet
    busy: false,
    ws: null,
    wsOpen: false,
    wsDelay: 500,
    httpOk: true,
    retryDelay: 500,
    retryTimer: null,
    answers: 0,
    pushes: 0
  };

  var TITLES = {
    order_opened: "Order opened",
    unit_packed: "Packed",
    carton_closed: "Carton closed",
    order_packed: "Order packed",
    shipped: "Shipped",
    unknown_code: "Unknown code",
    order_not_picked: "Not picked yet",
    order_shipped: "Already shipped",
    order_elsewhere: "At another station",
    station_busy: "Station busy",
    no_order: "No order",
    wrong_order: "Wrong order",
    not_in_order: "Not in this order",
    all_packed: "All packed",
    carton_empty: "Carton empty",
    units_left: "Units left",
    nothing_to_print: "Nothing to print",
    no_printer: "No printer",
    sscc_exhausted: "No SSCC left",
    sscc_unavailable: "No SSCC"
  };

  // ------------------------------------------------------------------ helpers

  function newScanId() {
    // randomUUID needs a secure context; a tablet on plain http has none.
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20)].join("-");
  }

  /* "(00) 3 7612345000000001 6": extension digit, the 16 digits of company
   * prefix and serial, check digit — the label's own line when it cannot tell
   * where the company prefix ends (the page never can). */
  function ssccText(s, state) {
    if (!s) { return state === "open" ? "SSCC when closed" : "SSCC on its label"; }
    if (!/^\d{18}$/.test(s)) { return s; }
    return "(00) " + s.charAt(0) + " " + s.slice(1, 17) + " " + s.charAt(17);
  }

  function node(tag, cls, text, parent) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (parent) { parent.appendChild(e); }
    return e;
  }

  function screen(name) {
    document.body.dataset.screen = name;
    // a key or a station may have to be typed; badges and goods are scanned
    $("scan").inputMode = name === "setup" || name === "station" ? "text" : "none";
    $("scan-label").textContent = {
      setup: "Scan or type this device's key",
      login: "Scan your badge",
      station: "Scan or type the pack station (e.g. P1)",
      pack: "Scan a tote, order or unit"
    }[name];
    focusScan();
  }

  function focusScan() { $("scan").focus(); }

  function saveQueue() {
    ls.setItem("pe.packQueue", JSON.stringify(S.queue));
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
    } catch (e) { /* no audio on this device: the banner and flash still tell */ }
  }

  var flashTimer = null;
  function feedback(kind, title, message) {
    if (kind !== "success" && kind !== "warning" && kind !== "error") { kind = "error"; }
    document.body.dataset.feedback = kind;
    $("banner-title").textContent = title || "";
    $("banner-message").textContent = message || "";
    beep(kind);
    if (navigator.vibrate) {
      navigator.vibrate({ success: 60, warning: [120, 80, 120], error: [400, 120, 400] }[kind]);
    }
    var f = $("flash");
    f.className = kind + " on";
    clearTimeout(flashTimer);
    flashTimer = setTimeout(function () { f.className = kind; }, kind === "error" ? 600 : 250);
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

  function errorCode(res) { return res.data && res.data.error ? res.data.error.code : ""; }
  function errorText(res) {
    return res.data && res.data.error ? res.data.error.message : "error " + res.status;
  }

  // ------------------------------------------------------------------ scans

  function enqueue(code) {
    S.queue.push({ station: S.station, code: code, scan_id: newScanId(), picker: S.picker ? S.picker.id : null });
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
    api("POST", "/api/v1/pack/scan", { station: item.station, code: item.code, scan_id: item.scan_id }).then(function (res) {
      S.busy = false;
      if (res.status === 200) {
        S.queue.shift(); saveQueue();
        S.httpOk = true; S.retryDelay = 500; updateConn();
        settle(res.data);
        processQueue();
      } else if (res.status === 401) {
        loggedOut("Your session ended: scan your badge");
      } else if (res.status >= 500 || res.status === 429) {
        // The box could not confirm it (restarting, disk full): the scan stays
        // queued and is retried with the same scan_id.
        if (S.httpOk) { feedback("warning", "Will retry", errorText(res)); }
        S.httpOk = false; updateConn(); scheduleRetry();
      } else {
        S.queue.shift(); saveQueue();
        releaseHeld();
        if (errorCode(res) === "unknown_station" || res.status === 404) {
          chooseStation(errorText(res));
        } else {
          feedback("error", "Refused", errorText(res));
        }
        processQueue();
      }
    }, function () {
      // The network dropped: keep the scan, retry it with the same scan_id.
      S.busy = false; S.httpOk = false; updateConn(); scheduleRetry();
    });
  }

  function signature(a) {
    return JSON.stringify([a.result, a.feedback, a.message, a.station, a.printed === undefined ? null : a.printed]);
  }

  /* Our own scan's answer. The box pushes it on the WebSocket too (and, for a
   * CLOSE that prints, the order_packed before it): those pushes are not shown
   * twice. One that is not ours (the fixed scanner scanned meanwhile) cannot be
   * placed in time, so the station is read again instead. */
  function settle(answer) {
    var key = signature(answer), held = S.held, matched = false, others = [];
    S.held = [];
    held.forEach(function (m) {
      if (!matched && signature(m) === key) { matched = true; } else if (!expected(m)) { others.push(m); }
    });
    others.forEach(function (m) { applyView(m.station, m.result, m.printed, m.shipped); });
    if (!matched) { S.expect.push({ key: key, at: Date.now() }); }
    show(answer);
    if (others.length) { refresh(); }
  }

  function releaseHeld() {
    var held = S.held;
    S.held = [];
    held.forEach(onPush);
  }

  function show(a) {
    S.answers += 1;
    document.body.dataset.result = a.result;
    document.body.dataset.answers = String(S.answers);
    if (a.station) { applyView(a.station, a.result, a.printed, a.shipped); }
    feedback(a.feedback, TITLES[a.result] || a.result, a.message);
  }

  /* The push of one of our earlier answers (it came after that answer)? */
  function expected(msg) {
    var now = Date.now(), key = signature(msg);
    S.expect = S.expect.filter(function (e) { return now - e.at < 10000; });
    for (var i = 0; i < S.expect.length; i++) {
      if (S.expect[i].key === key) { S.expect.splice(i, 1); return true; }
    }
    return false;
  }

  function onPush(msg) {
    if (!msg.station || msg.station.station !== S.station) { return; }
    if (S.queue.length) { S.held.push(msg); return; }
    if (expected(msg)) { return; }
    var o = msg.station.order;
    if (msg.result === "order_packed" && o && S.done && S.done.order === o.order) {
      // our CLOSE's first commit, pushed but come after its answer (shipped):
      // not news, but its cartons carry the SSCCs the shipped station lacks
      S.done.cartons = shippedCartons(o.cartons, S.done.printed);
      render();
      return;
    }
    S.pushes += 1;
    document.body.dataset.pushes = String(S.pushes);
    show(msg);
  }

  // ------------------------------------------------------------------ rendering

  function applyView(view, result, printed, shipped) {
    if (!view || view.station !== S.station) { return; }
    var prev = S.view && S.view.order;
    if (view.order) {
      S.done = null;
    } else if (result === "shipped" && shipped && shipped.length) {
      // The answer carries the orders it shipped, every carton with its SSCC:
      // the one this station held (a cart's last order otherwise).
      var mine = shipped.filter(function (o) { return prev && o.order === prev.order; })[0]
        || shipped[shipped.length - 1];
      S.done = {
        order: mine.order,
        units_left: 0,
        lines: mine.lines,
        cartons: shippedCartons(mine.cartons, printed === true),
        printed: printed === true
      };
    } else if (result === "shipped" && prev) {
      // The box frees the station when it ships: keep the order on screen with
      // its cartons (their SSCCs are what the packer checks the labels against).
      S.done = {
        order: prev.order,
        units_left: 0,
        lines: prev.lines.map(function (l) { return { sku: l.sku, picked: l.picked, packed: l.picked, left: 0 }; }),
        cartons: shippedCartons(prev.cartons, printed === true),
        printed: printed === true
      };
    } else if (result === "order_opened") {
      S.done = null;  // RELEASE
    }
    S.view = view;
    render();
  }

  function shippedCartons(cartons, printed) {
    return cartons.map(function (c) {
      return { n: c.n, state: "shipped", sscc: c.sscc, printed: c.printed || printed, lines: c.lines };
    });
  }

  function render() {
    var v = S.view, order = v && v.order ? v.order : S.done, shipped = !(v && v.order) && !!S.done;
    $("station-name").textContent = S.station || "";
    var p = $("printer");
    if (!v) {
      p.textContent = ""; p.className = "printer";
    } else if (!v.printer) {
      p.textContent = "No label printer at this station"; p.className = "printer warn";
    } else if (v.printer_state === "ready") {
      p.textContent = "Printer " + v.printer + ": ready"; p.className = "printer";
    } else {
      p.textContent = "Printer " + v.printer + ": " + (v.printer_state || "state not reported yet");
      p.className = "printer warn";
    }
    $("order-ref").textContent = order ? "Order " + order.order : "No order";
    var st = $("order-state");
    st.className = shipped ? "shipped" : "";
    st.textContent = !order ? "scan a tote, task or order"
      : shipped ? "shipped"
      : order.units_left ? order.units_left + " to pack" : "all packed";
    document.body.dataset.order = order ? order.order : "";
    document.body.dataset.orderState = !order ? "none" : shipped ? "shipped" : "packing";

    var body = $("lines").tBodies[0];
    while (body.firstChild) { body.removeChild(body.firstChild); }
    var lines = order ? order.lines : [];
    lines.forEach(function (l) {
      var tr = node("tr", l.left ? "" : "done", null, body);
      tr.dataset.sku = l.sku;
      node("td", "sku", l.sku, tr);
      node("td", "picked", l.picked, tr);
      node("td", "packed", l.packed, tr);
      node("td", "left", l.left, tr);
    });
    $("lines").classList.toggle("has-lines", lines.length > 0);

    var list = $("cartons");
    while (list.firstChild) { list.removeChild(list.firstChild); }
    (order ? order.cartons : []).forEach(function (c) {
      var li = node("li", c.state, null, list);
      li.dataset.n = String(c.n);
      var head = node("div", "head", null, li);
      node("span", "", "Carton " + c.n, head);
      node("span", "state", c.state, head);
      node("div", "sscc", ssccText(c.sscc, c.state), li);
      var contents = node("div", "contents", null, li);
      node("span", "", c.lines.map(function (x) { return x.sku + " × " + x.qty; }).join(", ") || "empty", contents);
      if (c.state !== "open") {
        node("span", "label-state " + (c.printed ? "yes" : "no"), c.printed ? " · label printed" : " · label not printed", contents);
      }
    });

    var has = !!(v && v.order);
    $("btn-close").disabled = !has;
    $("btn-release").disabled = !has;
  }

  function refresh() {
    if (!S.station || !S.token) { return Promise.resolve(); }
    var seen = S.answers;
    return api("GET", "/api/v1/pack/stations/" + encodeURIComponent(S.station)).then(function (res) {
      if (res.status === 200) {
        // an answer that came meanwhile may be newer than this read
        if (S.answers === seen) { applyView(res.data, null); }
      } else if (res.status === 401) {
        loggedOut("Your session ended: scan your badge");
      } else if (res.status === 404) {
        chooseStation(errorText(res));
      }
    }, function () { S.httpOk = false; updateConn(); });
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
        S.wsOpen = true; S.wsDelay = 500; S.httpOk = true; updateConn();
        refresh();  // whatever the fixed scanner did while the socket was down
        processQueue();
      } else if (msg.type === "station") {
        onPush(msg);
      }
    };
    ws.onclose = function (ev) {
      S.ws = null; S.wsOpen = false; updateConn();
      if (ev.code === 4401) { loggedOut("Your session ended: scan your badge"); return; }
      if (S.token) { setTimeout(connect, S.wsDelay); S.wsDelay = Math.min(S.wsDelay * 2, 5000); }
    };
  }

  // ------------------------------------------------------------------ session

  function setStation(name) {
    S.station = name;
    ls.setItem("pe.packStation", name);
    history.replaceState(null, "", "/pack?station=" + encodeURIComponent(name));
    $("station-name").textContent = name;
  }

  function chooseStation(message) {
    S.station = null; S.view = null; S.done = null;
    ls.removeItem("pe.packStation");
    history.replaceState(null, "", "/pack");
    render();
    screen("station");
    if (message) { feedback("error", "No such station", message); }
  }

  function startPacking() {
    $("who").textContent = S.picker ? S.picker.name : "PickEdge";
    if (!S.station) { screen("station"); connect(); return; }
    screen("pack");
    render();
    refresh();
    connect();
    processQueue();
  }

  function loggedOut(message) {
    S.token = null; S.picker = null; S.held = []; S.expect = [];
    ls.removeItem("pe.token"); ls.removeItem("pe.picker");
    if (S.ws) { S.ws.close(); }
    $("who").textContent = "PickEdge";
    screen("login");
    if (message) { feedback("warning", "Log in", message); }
  }

  function login(badge) {
    api("POST", "/api/v1/sessions", { badge: badge }, { "X-Device-Key": S.deviceKey }).then(function (res) {
      if (res.status === 201) {
        S.token = res.data.token; S.picker = res.data.picker;
        // Scans of another packer were never confirmed: not under this badge.
        S.queue = S.queue.filter(function (q) { return q.picker === S.picker.id; });
        saveQueue();
        ls.setItem("pe.token", S.token); ls.setItem("pe.picker", JSON.stringify(S.picker));
        S.httpOk = true;
        feedback("success", "Hello " + S.picker.name, S.station ? "Station " + S.station : "Scan the station");
        startPacking();
      } else if (errorCode(res) === "unknown_device") {
        S.deviceKey = null; ls.removeItem("pe.deviceKey");
        screen("setup");
        feedback("error", "Not enrolled", "This device is not enrolled: scan its device key");
      } else {
        feedback("error", "Not logged in", errorText(res));
      }
    }, function () { S.httpOk = false; updateConn(); feedback("error", "Offline", "No connection to the box"); });
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
    } else if (mode === "station") {
      setStation(value.trim());
      startPacking();
    } else {
      enqueue(value);
    }
  });

  Array.prototype.forEach.call(document.querySelectorAll("#actions [data-command]"), function (b) {
    b.addEventListener("click", function () { enqueue(b.dataset.command); focusScan(); });
  });

  $("btn-station").addEventListener("click", function () { chooseStation(""); });

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

  var wanted = new URLSearchParams(location.search).get("station") || ls.getItem("pe.packStation");
  if (wanted) { setStation(wanted); }
  saveQueue();
  render();
  if (!S.deviceKey) { screen("setup"); } else if (!S.token) { screen("login"); } else { startPacking(); }
}());
