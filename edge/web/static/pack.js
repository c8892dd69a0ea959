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
 * The login (device key once, then badge), the feedback, HTTP and socket are
 * common.js's, shared with pda.js: one PDA, one session, either page.
 */
"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var PE = window.PickEdge;  // common.js: feedback, login, HTTP, socket
  var ls = window.localStorage;
  var S = PE.state({
    station: null,
    queue: JSON.parse(ls.getItem("pe.packQueue") || "[]"),
    view: null,       // the station as the box last answered
    done: null,       // the order just shipped (the box frees the station)
    held: [],         // pushes that arrived while our own scan was unanswered
    expect: [],       // our answers whose push has not arrived yet
    pushes: 0
  });

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

  function updateConn() { PE.showConn(S.wsOpen && S.httpOk, S.queue.length); }

  function feedback(kind, title, message) {
    PE.feedback.signal(kind);
    $("banner-title").textContent = title || "";
    $("banner-message").textContent = message || "";
  }

  function api(method, path, body, extraHeaders) { return PE.http(method, path, body, extraHeaders, S.token); }
  var errorCode = PE.errorCode, errorText = PE.errorText;

  // ------------------------------------------------------------------ scans

  function enqueue(code) {
    S.queue.push({ station: S.station, code: code, scan_id: PE.newScanId(), picker: S.picker ? S.picker.id : null });
    saveQueue();
    processQueue();
  }

  function processQueue() {
    PE.sendQueue(S, {
      send: function (item) {
        return api("POST", "/api/v1/pack/scan", { station: item.station, code: item.code, scan_id: item.scan_id });
      },
      save: saveQueue,
      changed: updateConn,
      answer: settle,
      expired: function () { loggedOut("Your session ended: scan your badge"); },
      retrying: function (res) { feedback("warning", "Will retry", errorText(res)); },
      refused: function (res) {
        releaseHeld();
        if (errorCode(res) === "unknown_station" || res.status === 404) {
          chooseStation(errorText(res));
        } else {
          feedback("error", "Refused", errorText(res));
        }
      }
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
    PE.socket(S, {
      connected: function () {
        updateConn();
        refresh();  // whatever the fixed scanner did while the socket was down
        processQueue();
      },
      message: function (msg) { if (msg.type === "station") { onPush(msg); } },
      closed: updateConn,
      expired: function () { loggedOut("Your session ended: scan your badge"); }
    });
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
    PE.auth.clear();
    if (S.ws) { S.ws.close(); }
    $("who").textContent = "PickEdge";
    screen("login");
    if (message) { feedback("warning", "Log in", message); }
  }

  function login(badge) {
    PE.auth.login(S.deviceKey, badge, {
      ok: function (token, picker) {
        S.token = token; S.picker = picker;
        // Scans of another packer were never confirmed: not under this badge.
        S.queue = S.queue.filter(function (q) { return q.picker === S.picker.id; });
        saveQueue();
        S.httpOk = true;
        feedback("success", "Hello " + S.picker.name, S.station ? "Station " + S.station : "Scan the station");
        startPacking();
      },
      unknownDevice: function () {
        S.deviceKey = null;
        screen("setup");
        feedback("error", "Not enrolled", "This device is not enrolled: scan its device key");
      },
      refused: function (res) { feedback("error", "Not logged in", errorText(res)); },
      offline: function () { S.httpOk = false; updateConn(); feedback("error", "Offline", "No connection to the box"); }
    });
  }

  // ------------------------------------------------------------------ events

  PE.scanInput(function (value, mode) {
    if (mode === "setup") {
      S.deviceKey = PE.auth.setDevice(value);
      screen("login");
    } else if (mode === "login") {
      login(value);
    } else if (mode === "station") {
      setStation(value.trim());
      startPacking();
    } else {
      enqueue(value);
    }
  }, focusScan);

  Array.prototype.forEach.call(document.querySelectorAll("#actions [data-command]"), function (b) {
    b.addEventListener("click", function () { enqueue(b.dataset.command); focusScan(); });
  });

  $("btn-station").addEventListener("click", function () { chooseStation(""); });

  $("btn-logout").addEventListener("click", function () {
    PE.auth.logout(S.token);
    loggedOut("");
  });

  PE.watchNetwork(S, processQueue, connect, updateConn);

  // ------------------------------------------------------------------ start

  var wanted = new URLSearchParams(location.search).get("station") || ls.getItem("pe.packStation");
  if (wanted) { setStation(wanted); }
  saveQueue();
  render();
  if (!S.deviceKey) { screen("setup"); } else if (!S.token) { screen("login"); } else { startPacking(); }
}());
