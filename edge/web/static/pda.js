/* PickEdge PDA page. No build step: plain ES2017 for handheld browsers.
 *
 * One input takes every scan (keyboard-wedge scanners type, then Enter). Scans
 * go into a queue kept in localStorage and are sent one at a time with their
 * scan_id; when the Wi-Fi drops they are retried with the SAME scan_id, so the
 * box counts each unit once however often the answer is lost. The box keeps
 * all picking state: this page only shows what it answers.
 *
 * On a cart (the tour has a `cart`): first a tote is scanned for each slot
 * (the stop card says which), then each stop says its tote, and once its
 * units are in hand (state to_put) the scan of that tote puts them; the cart
 * panel shows every slot with its tote and progress.
 *
 * Put-back (after the cloud cancelled an order whose units were picked): once
 * no tour is active, the picker's open put-back lines (an answer's put_backs,
 * or GET /api/v1/put-backs at load, on a reconnect, after a task_cancelled
 * push and after a tour ends) replace the stop card with the put-back panel;
 * the box refuses new work until they are back.
 *
 * Count tours (tour.kind "count") are blind: a stop's qty is null and the
 * page never shows a quantity to expect, only the picker's own count
 * (stop.picked). At a stop: scan the location, every unit, the location
 * again — or type the units counted (POST /api/v1/tour/count). A count the
 * box asks for again (result "recount") shows "Count again from zero" until
 * that stop is finished; the tour view does not say which attempt a stop is
 * in, so the page keeps it in localStorage (pe.recount) across a reload.
 *
 * A picker whose role (from the login answer) is supervisor or admin gets a
 * "Supervisor" button: the supervisor view replaces the pick screen with the
 * active tours (Release asks for a reason, Reassign for a picker id; a tour
 * idle for IDLE_LONG_S stands out), everyone's open put-backs, the counts
 * (open, recent results, accuracy), the exceptions and an Adjust stock form;
 * each action's answer or refusal (the box's error message) is shown. Its
 * lists are read again after every action and every REFRESH_MS while open.
 * A picker whose tour a supervisor released or handed on is pushed
 * tour_withdrawn: the page shows its message and drops the tour.
 */
"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var PE = window.PickEdge;  // common.js: feedback, login, HTTP, socket
  var ls = window.localStorage;
  var S = PE.state({
    queue: JSON.parse(ls.getItem("pe.queue") || "[]"),
    tour: null,
    layout: null,
    putBacks: [],      // the picker's open put-back lines, as the box sent them
    // sku -> description, from the tours seen; those of open put-back lines
    // are kept in localStorage, so that a reload still shows them
    descriptions: JSON.parse(ls.getItem("pe.putBackDescriptions") || "{}"),
    recount: JSON.parse(ls.getItem("pe.recount") || "null"),  // {tour, stop} being counted again
    wsEver: false,     // the socket was up once: a new "connected" is a reconnect
    view: "pick",      // or "supervisor" (supervisors and admins only)
    sv: { timer: null, dialog: null, loads: 0 }  // the supervisor view's refresh and open dialog
  });

  // ------------------------------------------------------------------ helpers

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
    // the supervisor view has no scan input: its fields keep the focus
    if (S.view === "supervisor") { return; }
    // the count's quantity field keeps the focus while it is typed into
    if ($("short-dialog").hidden && document.activeElement !== $("count-qty")) { $("scan").focus(); }
  }

  function saveQueue() {
    ls.setItem("pe.queue", JSON.stringify(S.queue));
    $("queue-count").textContent = String(S.queue.length);
    updateConn();
  }

  function updateConn() { PE.showConn(S.wsOpen && S.httpOk, S.queue.length); }

  function feedback(kind, message) {
    PE.feedback.signal(kind);
    $("message").textContent = message || "";
  }

  function api(method, path, body, extraHeaders) { return PE.http(method, path, body, extraHeaders, S.token); }
  var errorText = PE.errorText;

  // ------------------------------------------------------------------ scans

  function enqueue(code) {
    S.queue.push({ code: code, scan_id: PE.newScanId(), picker: S.picker ? S.picker.id : null });
    saveQueue();
    processQueue();
  }

  function processQueue() {
    PE.sendQueue(S, {
      send: function (item) { return api("POST", "/api/v1/scan", { code: item.code, scan_id: item.scan_id }); },
      save: saveQueue,
      changed: updateConn,
      answer: handleAnswer,
      expired: function () { loggedOut("Your session ended: scan your badge"); },
      retrying: function (res) { feedback("warning", errorText(res) + " — will retry"); },
      refused: function (res) { feedback("error", errorText(res)); }
    });
  }

  function handleAnswer(a) {
    S.answers += 1;
    document.body.dataset.result = a.result;
    document.body.dataset.answers = String(S.answers);
    if (a.tour !== undefined) { S.tour = a.tour; }
    if (a.put_backs !== undefined) { S.putBacks = a.put_backs; }
    if (a.result === "recount" && a.tour) {
      var again = currentStop();
      setRecount(again ? { tour: a.tour.tour, stop: again.stop } : null);
    } else if (a.result === "count_done") {
      setRecount(null);
    }
    render();
    var message = a.message;
    if (a.result === "tour_done") {
      message = "Tour complete — scan the next order or START";
      // units of an order cancelled during the tour are put back now
      loadPutBacks().then(function (lines) {
        if (lines && lines.length) { $("message").textContent = "Tour complete — put back first"; }
      });
    } else if (a.result === "put_back_done" && !S.putBacks.length) {
      message = "Everything is put back";
    } else if (a.result === "count_done" && a.tour && a.tour.state === "done") {
      message = a.message + " — count tour complete";
    }
    feedback(a.feedback, message);
  }

  // ------------------------------------------------------------------ put-back

  function activeTour() { return S.tour !== null && S.tour.state === "active"; }

  /* The picker's open put-back lines from the box; resolves to them, or to
   * null when they were not taken (offline, refused, or an answer came in
   * meanwhile: it carries newer lines than this read). */
  function loadPutBacks() {
    var seen = S.answers;
    return api("GET", "/api/v1/put-backs").then(function (res) {
      if (res.status !== 200 || S.answers !== seen) { return null; }
      S.putBacks = res.data.put_backs;
      render();
      return S.putBacks;
    }, function () { return null; });
  }

  /* The tour, then the put-back lines (load, reconnect, a cancel). */
  function refresh() { return loadTour().then(loadPutBacks); }

  // ------------------------------------------------------------------ rendering

  function currentStop() {
    var t = S.tour;
    if (!t || t.next_stop === null || t.next_stop === undefined) { return null; }
    for (var i = 0; i < t.stops.length; i++) { if (t.stops[i].stop === t.next_stop) { return t.stops[i]; } }
    return null;
  }

  /* The cart slot whose tote is to be scanned before the walk (null: none). */
  function bindingSlot() {
    var t = S.tour, cart = t && t.state === "active" ? t.cart : null;
    if (!cart || cart.next_slot === null || cart.next_slot === undefined) { return null; }
    for (var i = 0; i < cart.totes.length; i++) { if (cart.totes[i].slot === cart.next_slot) { return cart.totes[i]; } }
    return null;
  }

  function orderOf(tote) { return tote.order || tote.task; }

  function isCount(t) { return t !== null && t.kind === "count"; }

  function setRecount(value) {
    S.recount = value;
    if (value) { ls.setItem("pe.recount", JSON.stringify(value)); } else { ls.removeItem("pe.recount"); }
  }

  /* The current count stop is being counted a second time. */
  function recounting(stop) {
    var r = S.recount;
    return r !== null && stop !== null && stop.state === "location_ok" &&
      r.tour === S.tour.tour && r.stop === stop.stop;
  }

  function render() {
    var t = S.tour, stop = currentStop(), binding = bindingSlot();
    if (binding) {
      // the walk waits for the totes: the card asks for the next one
      var cart = t.cart, bound = cart.totes.filter(function (x) { return x.tote !== null; }).length;
      var slots = cart.totes.filter(function (x) { return x.state !== "cancelled"; }).length;
      $("stop-location").textContent = "Slot " + binding.slot;
      $("stop-tote").textContent = (binding.assigned ? "Scan tote " + binding.assigned : "Scan a tote") +
        " for slot " + binding.slot + " (order " + orderOf(binding) + ")";
      $("stop-hint").textContent = bound + " of " + slots + " totes on the cart";
    } else if (isCount(t) && stop) {
      $("stop-location").textContent = stop.location;
      $("stop-tote").textContent = "";
      $("stop-hint").textContent = stop.state === "pending" ? "Scan the location"
        : "Scan every unit — scan the location again when done";
    } else {
      $("stop-location").textContent = stop ? stop.location : "—";
      var tote = stop && stop.slot !== undefined ? "tote " + (stop.tote || "?") + " (slot " + stop.slot + ")" : "";
      $("stop-tote").textContent = !tote ? ""
        : stop.state === "to_put" ? "Put " + stop.picked + " × " + stop.sku + " into " + tote + " — scan the tote"
        : "→ " + tote;
      $("stop-hint").textContent = !stop ? (t && t.cart ? "Scan START or a cart label" : "Scan an order, task, tote or START")
        : stop.state === "pending" ? "Go to " + stop.location + " and scan its label"
        : stop.state === "to_put" ? ""
        : "Scan the item";
    }
    $("stop-tote").hidden = !$("stop-tote").textContent;
    var counting = isCount(t) && stop !== null;
    $("stop-verb").textContent = counting ? "Count " : "";
    $("stop-sku").textContent = stop ? stop.sku : "";
    $("stop-desc").textContent = !stop ? "" : counting ? "(" + stop.description + ")" : stop.description;
    $("stop-at").textContent = counting ? " at " + stop.location : "";
    // a count stop's qty is null: the pick line shows nothing of it
    $("stop-picked").textContent = isCount(t) ? "" : stop ? String(stop.picked) : "0";
    $("stop-qty").textContent = isCount(t) ? "" : stop ? String(stop.qty) : "0";
    renderCount(counting ? stop : null);
    $("stop-lot").textContent = stop && stop.lot ? "lot " + stop.lot + (stop.expiry ? " · exp " + stop.expiry : "") : "";
    var stops = t ? t.stops : [];
    var done = stops.filter(function (s) { return s.state === "done" || s.state === "short"; }).length;
    $("done-count").textContent = String(done);
    $("stop-total").textContent = String(stops.length);
    $("route-length").textContent = t && t.route && t.route.length_m !== null ? t.route.length_m.toFixed(1) + " m" : "";
    // the walk begins once the totes are bound; units in hand go into their
    // tote (the box refuses a short or skip of them)
    var locked = !stop || binding !== null || stop.state === "to_put" || isCount(t);
    $("btn-short").disabled = locked;
    $("btn-skip").disabled = locked;
    document.body.dataset.tour = t ? t.state : "none";
    document.body.dataset.cart = !(t && t.cart) ? "none" : binding ? "binding" : "walking";
    document.body.dataset.stopState = stop ? stop.state : "none";
    document.body.dataset.kind = t ? t.kind || "pick" : "none";
    stops.forEach(function (s) { if (s.description) { S.descriptions[s.sku] = s.description; } });
    renderCart(stop, binding);
    renderPutBack(!activeTour() && S.putBacks.length > 0);
    drawMap();
  }

  /* The put-back panel: what to do now (scan a unit; with units in hand, the
   * location to put them into), then one row per line: item, units left,
   * where they came from, units in hand (that row highlighted). */
  function renderPutBack(shown) {
    var rows = document.querySelector("#put-back-lines tbody");
    $("put-back").hidden = !shown;
    while (rows.firstChild) { rows.removeChild(rows.firstChild); }
    var held = null;
    if (shown) {
      S.putBacks.forEach(function (line) { if (!held && line.in_hand > 0) { held = line; } });
    }
    document.body.dataset.putBack = !shown ? "none" : held ? "in_hand" : "todo";
    var kept = {};
    if (shown) {
      S.putBacks.forEach(function (line) {
        if (S.descriptions[line.sku]) { kept[line.sku] = S.descriptions[line.sku]; }
      });
    }
    var saved = JSON.stringify(kept);
    if (ls.getItem("pe.putBackDescriptions") !== saved) { ls.setItem("pe.putBackDescriptions", saved); }
    if (!shown) { return; }
    var todo = $("put-back-todo");
    while (todo.firstChild) { todo.removeChild(todo.firstChild); }
    var say = function (text, code) {
      // codes (SKU, location) never break at their hyphens
      var span = document.createElement("span");
      span.textContent = text;
      if (code) { span.className = "code"; }
      todo.appendChild(span);
    };
    if (held) {
      say("Put " + held.in_hand + " × "); say(held.sku, true); say(" into "); say(held.origin, true);
      say(" (or another location of "); say(held.sku, true); say(") — scan the location");
    } else {
      say("Scan a unit to put back");
    }
    S.putBacks.forEach(function (line) {
      var row = document.createElement("tr");
      row.className = line === held ? "current" : "";
      row.dataset.task = line.task;
      row.dataset.sku = line.sku;
      row.dataset.inHand = String(line.in_hand);
      var cell = function (cls, text) {
        var c = document.createElement("td");
        c.className = cls; c.textContent = text;
        row.appendChild(c);
        return c;
      };
      var item = cell("pb-item", line.sku);
      var extra = [S.descriptions[line.sku] || "", line.lot ? "lot " + line.lot : ""].filter(Boolean);
      if (extra.length) {
        var desc = document.createElement("span");
        desc.className = "pb-desc"; desc.textContent = extra.join(" · ");
        item.appendChild(desc);
      }
      cell("pb-left", String(line.qty));
      cell("pb-origin", line.origin);
      cell("pb-hand", String(line.in_hand));
      rows.appendChild(row);
    });
  }

  /* The count stop card (stop null: not counting): the picker's own count,
   * the recount band, the quantity field; then the tour's list. */
  function renderCount(stop) {
    var again = stop !== null && recounting(stop);
    document.body.dataset.count = !stop ? "none" : stop.state === "pending" ? "pending"
      : again ? "recount" : "counting";
    $("stop-counted").hidden = !stop || stop.state === "pending";
    $("stop-counted").textContent = stop && stop.state !== "pending" ? stop.picked + " counted" : "";
    $("stop-recount").hidden = !again;
    var form = $("count-form"), open = stop !== null && stop.state === "location_ok";
    if (!open || form.dataset.stop !== String(stop.stop)) { $("count-qty").value = ""; }
    form.hidden = !open;
    form.dataset.stop = open ? String(stop.stop) : "";
    renderCountList(stop);
  }

  var COUNT_STATE = { pending: "to count", location_ok: "counting" };

  /* One row per location of a count tour (also once it is done): location,
   * SKU, and "to count", "counting" or "counted N" (the picker's count). */
  function renderCountList(stop) {
    var t = S.tour, list = $("count-stops"), shown = isCount(t) && S.putBacks.length === 0;
    $("count-list").hidden = !shown;
    while (list.firstChild) { list.removeChild(list.firstChild); }
    if (!shown) { return; }
    t.stops.forEach(function (s) {
      var row = document.createElement("li");
      row.className = s.state + (stop && s.stop === stop.stop ? " current" : "");
      row.dataset.stop = String(s.stop);
      row.dataset.state = s.state;
      var cell = function (cls, text) {
        var c = document.createElement("span");
        c.className = cls; c.textContent = text;
        row.appendChild(c);
      };
      cell("cs-location", s.location);
      cell("cs-sku", s.sku);
      cell("cs-state", s.state === "done" ? "counted " + s.picked : COUNT_STATE[s.state] || s.state);
      list.appendChild(row);
    });
  }

  var STATE_MARK = { done: "✓", cancelled: "✕" };

  /* One row per tote slot: number, order, tote (or the one to scan), picked
   * of units with a bar, a tick when done; the slot being bound or picked for
   * is highlighted. */
  function renderCart(stop, binding) {
    var cart = S.tour ? S.tour.cart : null, list = $("cart-slots");
    $("cart").hidden = !cart;
    while (list.firstChild) { list.removeChild(list.firstChild); }
    if (!cart) { return; }
    cart.totes.forEach(function (tote) {
      var row = document.createElement("li");
      var mark = binding ? binding.slot === tote.slot : stop && stop.slot === tote.slot;
      row.className = "slot " + tote.state + (mark ? " current" : "");
      row.dataset.slot = String(tote.slot);
      row.dataset.state = tote.state;
      var cell = function (cls, text) {
        var c = document.createElement("span");
        c.className = cls; c.textContent = text;
        row.appendChild(c);
        return c;
      };
      cell("slot-no", String(tote.slot));
      cell("slot-order", orderOf(tote));
      cell("slot-tote", tote.tote || (tote.state === "cancelled" ? "—"
        : tote.assigned ? "scan " + tote.assigned : "scan a tote"));
      var progress = cell("slot-progress", tote.picked + "/" + tote.units);
      var bar = document.createElement("span"), fill = document.createElement("i");
      bar.className = "bar";
      fill.style.width = (tote.units ? Math.min(100, 100 * tote.picked / tote.units) : 0) + "%";
      bar.appendChild(fill); progress.appendChild(bar);
      cell("slot-state", STATE_MARK[tote.state] || "").title = tote.state;
      list.appendChild(row);
    });
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
    PE.socket(S, {
      connected: function () {
        updateConn(); processQueue();
        // a cancel may have come while the socket was down
        if (S.wsEver) { refresh(); }
        S.wsEver = true;
      },
      message: function (msg) {
        if (msg.type === "tour_assigned" || msg.type === "tour_rerouted") {
          S.tour = msg.tour; render();
        } else if (msg.type === "tour_withdrawn") {
          // a supervisor released the tour or handed it to another picker
          if (!S.tour || msg.tour === undefined || S.tour.tour === msg.tour) {
            S.tour = null; setRecount(null); render();
          }
          feedback("warning", msg.message || "a supervisor took this tour off you");
          // put-back lines of the tour went with it
          loadPutBacks();
          if (S.view === "supervisor") { loadSupervisor(); }
        } else if (msg.type === "task_cancelled") {
          feedback("warning", msg.message || "a task was cancelled");
          // its units in hand become put-back work once no tour is left
          loadTour().then(function () { if (!activeTour()) { loadPutBacks(); } });
        } else if (msg.type === "message" && msg.text) {
          $("message").textContent = msg.text;
        }
      },
      closed: updateConn,
      expired: function () { loggedOut("Your session ended: scan your badge"); }
    });
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
    $("btn-supervisor").hidden = !isSupervisor();
    showView(S.view === "supervisor" && isSupervisor() ? "supervisor" : "pick");
    api("GET", "/api/v1/layout").then(function (res) {
      if (res.status === 200) { S.layout = res.data; }
      return refresh();
    }, function () { render(); });
    connect();
    processQueue();
  }

  function loggedOut(message) {
    showView("pick");
    $("btn-supervisor").hidden = true;
    S.token = null; S.picker = null; S.tour = null; S.putBacks = []; S.wsEver = false;
    setRecount(null);
    PE.auth.clear();
    if (S.ws) { S.ws.close(); }
    $("who").textContent = "PickEdge";
    screen("login");
    if (message) { feedback("warning", message); }
  }

  function login(badge) {
    PE.auth.login(S.deviceKey, badge, {
      ok: function (token, picker) {
        S.token = token; S.picker = picker;
        var others = S.queue.filter(function (q) { return q.picker !== S.picker.id; });
        if (others.length) {
          // Scans of another picker were never confirmed (no OK was shown): they
          // must not be counted under this badge.
          S.queue = S.queue.filter(function (q) { return q.picker === S.picker.id; });
          saveQueue();
        }
        S.httpOk = true;
        feedback("success", "Hello " + S.picker.name);
        startPicking();
      },
      unknownDevice: function () {
        S.deviceKey = null;
        screen("setup");
        feedback("error", "This PDA is not enrolled: scan its device key");
      },
      refused: function (res) { feedback("error", errorText(res)); },
      offline: function () { S.httpOk = false; updateConn(); feedback("error", "No connection to the box"); }
    });
  }

  // ------------------------------------------------------------------ supervisor view

  var SUPERVISOR_ROLES = ["supervisor", "admin"];
  var IDLE_LONG_S = 600;        // a tour without a scan for 10 min stands out: abandoned?
  var REFRESH_MS = 15000;
  var LIST_LIMIT = 30;

  function isSupervisor() { return !!S.picker && SUPERVISOR_ROLES.indexOf(S.picker.role) >= 0; }

  function showView(name) {
    S.view = name;
    document.body.dataset.view = name;
    var open = name === "supervisor";
    $("supervisor").hidden = !open;
    $("btn-supervisor").setAttribute("aria-pressed", open ? "true" : "false");
    $("btn-supervisor").textContent = open ? "Picking" : "Supervisor";
    clearInterval(S.sv.timer);
    S.sv.timer = null;
    if (open) {
      loadSupervisor();
      S.sv.timer = setInterval(function () { if (!document.hidden) { loadSupervisor(); } }, REFRESH_MS);
    } else {
      closeDialog();
      focusScan();
    }
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } return node; }

  function make(tag, cls, text, parent) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (parent) { parent.appendChild(e); }
    return e;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clock(ms) {
    if (ms === null || ms === undefined) { return "—"; }
    var d = new Date(ms);
    return pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  function duration(s) {
    if (s < 60) { return s + " s"; }
    if (s < 3600) { return Math.floor(s / 60) + " min"; }
    return Math.floor(s / 3600) + " h " + pad(Math.floor(s % 3600 / 60)) + " min";
  }
  function percent(ratio) { return ratio === null ? "—" : (100 * ratio).toFixed(1).replace(/\.0$/, "") + " %"; }

  function empty(list, text, cols) {
    if (cols) {
      var row = make("tr", "sv-empty", null, list), cell = make("td", "", text, row);
      cell.colSpan = cols;
    } else {
      make("li", "sv-empty", text, list);
    }
  }

  /* One action's outcome: the box's answer, or its refusal as it says it. */
  function svResult(ok, text) {
    var r = $("sv-result");
    r.dataset.status = ok ? "ok" : "error";
    r.textContent = text;
    PE.feedback.signal(ok ? "success" : "error");
  }

  function refusal(res) {
    var code = PE.errorCode(res);
    return "Refused (" + res.status + (code ? " " + code : "") + "): " + PE.errorText(res);
  }

  /* Every list of the view, each from its own call; a refusal shows in the
   * result line (403 when the role changed meanwhile). */
  function loadSupervisor() {
    var load = ++S.sv.loads;
    var get = function (path, draw) {
      return api("GET", path).then(function (res) {
        if (load !== S.sv.loads) { return; }  // a newer read is on its way
        if (res.status === 200) { draw(res.data); } else if (res.status === 401) {
          loggedOut("Your session ended: scan your badge");
        } else { svResult(false, refusal(res)); }
      }, function () { if (load === S.sv.loads) { svResult(false, "No connection to the box"); } });
    };
    return Promise.all([
      get("/api/v1/supervisor/tours", function (d) { drawTours(d.tours); }),
      get("/api/v1/put-backs?all=1", function (d) { drawPutBacks(d.put_backs); }),
      get("/api/v1/supervisor/counts?limit=" + LIST_LIMIT, drawCounts),
      get("/api/v1/supervisor/exceptions?limit=" + LIST_LIMIT, function (d) { drawExceptions(d.exceptions); })
    ]).then(function () { document.body.dataset.svLoads = String(load); });
  }

  function drawTours(tours) {
    var list = clear($("sv-tours"));
    if (!tours.length) { empty(list, "No active tour"); return; }
    tours.forEach(function (t) {
      var idle = t.idle_s >= IDLE_LONG_S;
      var li = make("li", idle ? "idle" : "", null, list);
      li.dataset.tour = String(t.tour);
      li.dataset.picker = t.picker.id;
      li.dataset.idle = idle ? "long" : "short";
      var head = make("div", "sv-tour-head", null, li);
      make("span", "sv-who", "Tour " + t.tour + " · " + (t.picker.name || t.picker.id) + " (" + t.picker.id + ")", head);
      make("span", "sv-idle", "idle " + duration(t.idle_s) + (idle ? " — abandoned?" : ""), head);
      var info = "started " + clock(t.started_ms) + " · " + t.stops_closed + " of " + t.stops + " stops" +
        (t.stops_short ? " (" + t.stops_short + " short)" : "") + " · " + t.picked + " of " + t.units + " units" +
        " · last scan " + clock(t.last_scan_ms) + (t.cart ? " · cart " + t.cart : "");
      make("div", "sv-tour-info", info, li);
      var buttons = make("div", "sv-buttons", null, li);
      var release = make("button", "sv-release", "Release", buttons);
      release.type = "button";
      release.addEventListener("click", function () { openDialog("release", t); });
      var reassign = make("button", "sv-reassign", "Reassign", buttons);
      reassign.type = "button";
      reassign.addEventListener("click", function () { openDialog("reassign", t); });
    });
  }

  function drawPutBacks(lines) {
    var rows = clear(document.querySelector("#sv-put-backs tbody"));
    if (!lines.length) { empty(rows, "Nothing to put back", 5); return; }
    lines.forEach(function (line) {
      var tr = make("tr", "", null, rows);
      tr.dataset.picker = line.picker || "";
      tr.dataset.sku = line.sku;
      tr.dataset.task = line.task;
      make("td", "", line.picker || "—", tr);
      var item = make("td", "", null, tr);
      make("span", "code", line.sku, item);
      item.appendChild(document.createTextNode(" "));
      make("span", "sv-sub", (line.lot ? "lot " + line.lot + " · " : "") + line.task, item);
      make("td", "", line.qty, tr);
      make("td", "code", line.origin, tr);
      make("td", "", line.in_hand, tr);
    });
  }

  var LINE_STATE = { pending: "to count", location_ok: "counting", done: "counted", cancelled: "cancelled" };

  function drawCounts(d) {
    var acc = d.accuracy, day = acc["1d"], month = acc["30d"];
    $("sv-accuracy").textContent = "Accuracy: last day " + percent(day.ratio) + " (" + day.matched + " of " +
      day.counted + " matched) · 30 days " + percent(month.ratio) + " (" + month.matched + " of " + month.counted + ")";
    var open = clear($("sv-counts-open"));
    if (!d.open.length) { empty(open, "No open count"); }
    d.open.forEach(function (c) {
      var li = make("li", c.state, null, open);
      li.dataset.task = c.task;
      li.dataset.state = c.state;
      var who = c.state === "started" && c.picker
        ? "counting: " + (c.picker.name || c.picker.id) + " (" + c.picker.id + "), tour " + c.tour : "open";
      make("strong", "", c.task, li);
      make("span", "", " · priority " + c.priority + " · " + who + ": ", li);
      make("span", "", c.lines.map(function (n) {
        return n.location + " " + n.sku + (n.state ? " (" + (LINE_STATE[n.state] || n.state) + ")" : "");
      }).join(", "), li);
    });
    var rows = clear(document.querySelector("#sv-counts-recent tbody"));
    if (!d.recent.length) { empty(rows, "No count finished yet", 5); }
    d.recent.forEach(function (r) {
      var tr = make("tr", r.matched ? "matched" : "differed", null, rows);
      tr.dataset.task = r.task;
      tr.dataset.location = r.location;
      tr.dataset.matched = r.matched ? "true" : "false";
      make("td", "", clock(r.at_ms), tr);
      var where = make("td", "", null, tr);
      make("span", "code", r.location, where);
      where.appendChild(document.createTextNode(" "));
      make("span", "sv-sub", r.sku, where);
      make("td", "", r.counted, tr);
      make("td", "", r.on_hand, tr);
      make("td", r.matched ? "sv-matched" : "sv-differed",
        (r.matched ? "matched" : "differed " + (r.counted - r.on_hand > 0 ? "+" : "") + (r.counted - r.on_hand)) +
        (r.attempts > 1 ? " · recounted" : "") + (r.picker ? " · " + r.picker : ""), tr);
    });
  }

  var KIND = { short: "Short", unfillable: "Unfillable", cancel: "Cancel", supervisor_action: "Supervisor",
    put_back: "Put-back", alert: "Alert" };

  function exceptionText(e) {
    if (e.kind === "short") {
      return e.task + ": " + e.sku + " at " + e.location + ", " + e.picked + " of " + e.expected +
        " (" + e.reason + ")" + (e.picker ? " · " + e.picker : "");
    }
    if (e.kind === "unfillable") { return e.task + ": " + e.sku + ", " + e.picked + " of " + e.expected + " (" + e.reason + ")"; }
    if (e.kind === "cancel") {
      return e.task + (e.order ? " (order " + e.order + ")" : "") + " cancelled" +
        (e.at_stage || e.stage ? " while " + (e.at_stage || e.stage) : "") +
        (e.put_back && e.put_back.length ? " · units to put back" : "");
    }
    if (e.kind === "supervisor_action") {
      var why = e.detail && e.detail.reason ? " — " + e.detail.reason : "";
      return e.by + ": " + e.action + " " + e.subject + why;
    }
    if (e.kind === "put_back") { return e.qty + " × " + e.sku + " to " + e.origin + " (" + e.task + ") held by " + (e.picker || "—"); }
    if (e.kind === "alert") { return e.severity + " " + e.alert + ": " + e.subject; }
    return JSON.stringify(e);
  }

  function drawExceptions(items) {
    var list = clear($("sv-exceptions"));
    if (!items.length) { empty(list, "No exception"); return; }
    items.forEach(function (e) {
      var li = make("li", "kind-" + e.kind, null, list);
      li.dataset.kind = e.kind;
      make("span", "sv-time", clock(e.at_ms), li);
      make("span", "sv-kind", KIND[e.kind] || e.kind, li);
      make("span", "", " " + exceptionText(e), li);
    });
  }

  // a release asks for a reason, a reassignment for the picker who takes the tour
  function openDialog(action, t) {
    S.sv.dialog = { action: action, tour: t.tour };
    var release = action === "release";
    $("sv-dialog-title").textContent = (release ? "Release tour " : "Reassign tour ") + t.tour +
      " (" + (t.picker.name || t.picker.id) + ")";
    $("sv-dialog-label").textContent = release
      ? "Reason (its picked units become your put-back work)" : "Picker id of the new holder";
    $("sv-dialog-ok").textContent = release ? "Release tour" : "Reassign tour";
    var input = $("sv-dialog-input");
    input.value = "";
    input.maxLength = release ? 200 : 64;
    $("sv-dialog").hidden = false;
    input.focus();
  }

  function closeDialog() { S.sv.dialog = null; $("sv-dialog").hidden = true; }

  $("sv-dialog-cancel").addEventListener("click", closeDialog);

  $("sv-dialog").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var d = S.sv.dialog, value = $("sv-dialog-input").value.trim();
    if (!d) { return; }
    if (!value) {
      svResult(false, d.action === "release" ? "Give a reason for the release" : "Give the id of the picker who takes the tour");
      return;
    }
    closeDialog();
    var path = "/api/v1/supervisor/tours/" + d.tour + "/" + d.action;
    var body = d.action === "release" ? { reason: value } : { picker: value };
    api("POST", path, body).then(function (res) {
      if (res.status === 200) {
        var a = res.data;
        if (d.action === "release") {
          // the units it picked are now this supervisor's to put back
          if (a.put_backs !== undefined) { S.putBacks = a.put_backs; render(); }
          svResult(true, "Tour " + a.tour + " released" + (a.put_back.length
            ? ": " + a.put_back.map(function (h) { return h.qty + " × " + h.sku; }).join(", ") + " to put back (yours now)"
            : ""));
        } else {
          svResult(true, "Tour " + a.tour + " handed from " + a.from + " to " + a.to);
        }
      } else {
        svResult(false, refusal(res));
      }
      loadSupervisor();
    }, function () { svResult(false, "No connection: nothing was sent, try again"); });
  });

  $("sv-adjust").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var field = function (name) { return $("sv-adjust-" + name).value.trim(); };
    var raw = field("qty"), qty = /^[-+]?[0-9]{1,9}$/.test(raw) ? parseInt(raw, 10) : NaN;
    if (!field("sku") || !field("location")) { svResult(false, "Give the item and the location"); return; }
    if (isNaN(qty) || qty === 0) { svResult(false, "Units: a signed number, not 0 (−2: two missing)"); return; }
    if (!field("reason")) { svResult(false, "Give a reason for the adjustment"); return; }
    var body = { sku: field("sku"), location: field("location"), qty: qty, reason: field("reason") };
    if (field("lot")) { body.lot = field("lot"); }
    api("POST", "/api/v1/supervisor/stock/adjust", body).then(function (res) {
      if (res.status === 200) {
        var a = res.data;
        svResult(true, a.sku + " at " + a.location + (a.lot ? " lot " + a.lot : "") + ": " + a.before + " → " +
          a.after + " (" + (a.delta > 0 ? "+" : "") + a.delta + ")");
        ["qty", "reason"].forEach(function (name) { $("sv-adjust-" + name).value = ""; });
      } else {
        svResult(false, refusal(res));
      }
      loadSupervisor();
    }, function () { svResult(false, "No connection: nothing was sent, try again"); });
  });

  $("sv-refresh").addEventListener("click", function () { loadSupervisor(); });

  $("btn-supervisor").addEventListener("click", function () {
    if (!isSupervisor()) { return; }
    showView(S.view === "supervisor" ? "pick" : "supervisor");
  });

  // ------------------------------------------------------------------ events
  // ------------------------------------------------------------------ events

  PE.scanInput(function (value, mode) {
    if (mode === "setup") {
      S.deviceKey = PE.auth.setDevice(value);
      screen("login");
    } else if (mode === "login") {
      login(value);
    } else {
      enqueue(value);
    }
  }, focusScan);

  $("btn-short").addEventListener("click", function () {
    var stop = currentStop();
    if (!stop || isCount(S.tour)) { return; }
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
    if (!stop || isCount(S.tour)) { return; }
    api("POST", "/api/v1/tour/skip", { stop: stop.stop }).then(function (res) {
      if (res.status === 200) { handleAnswer(res.data); } else { feedback("error", errorText(res)); }
    }, function () { feedback("error", "No connection: try again"); });
    focusScan();
  });

  // a count finished with a typed quantity instead of the location scan
  $("count-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var stop = currentStop(), raw = $("count-qty").value.trim();
    var qty = /^[0-9]{1,9}$/.test(raw) ? parseInt(raw, 10) : NaN;
    $("count-qty").blur();
    focusScan();
    if (!stop || !isCount(S.tour)) { return; }
    if (isNaN(qty)) { feedback("error", "Type the number of units counted"); return; }
    // scans still queued belong to this count: the quantity must not overtake them
    if (S.queue.length) { feedback("warning", "Scans are still being sent: enter the quantity again in a moment"); return; }
    api("POST", "/api/v1/tour/count", { stop: stop.stop, qty: qty }).then(function (res) {
      if (res.status === 200) {
        $("count-qty").value = "";
        handleAnswer(res.data);
      } else {
        feedback("error", errorText(res));
      }
    }, function () { feedback("error", "No connection: enter the quantity again"); });
  });

  $("btn-logout").addEventListener("click", function () {
    PE.auth.logout(S.token);
    loggedOut("");
  });

  PE.watchNetwork(S, processQueue, connect, updateConn);

  // ------------------------------------------------------------------ start

  saveQueue();
  if (!S.deviceKey) { screen("setup"); } else if (!S.token) { screen("login"); } else { startPicking(); }
}());
