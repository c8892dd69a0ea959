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
    wsEver: false      // the socket was up once: a new "connected" is a reconnect
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
    api("GET", "/api/v1/layout").then(function (res) {
      if (res.status === 200) { S.layout = res.data; }
      return refresh();
    }, function () { render(); });
    connect();
    processQueue();
  }

  function loggedOut(message) {
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
