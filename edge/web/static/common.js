/* PickEdge: what the PDA page (pda.js) and the pack station page (pack.js)
 * share. No build step: plain ES2017, loaded before the page's own script.
 *
 * window.PickEdge = {
 *   feedback: { beep, buzz, flash, signal },  // tone, vibration, #flash
 *   auth: { load, setDevice, forgetDevice, save, clear, login, logout },
 *   http(method, path, body, extraHeaders, token) -> {status, data},
 *   errorCode(res), errorText(res),
 *   state(own) -> S,                          // login, queue and socket flags
 *   newScanId(),
 *   showConn(online, waiting),                 // the #conn indicator
 *   retryLater(S, fn),                         // backoff 500 ms .. 4 s
 *   sendQueue(S, on),                          // the scan queue, retried
 *   socket(S, on),                             // /api/v1/ws, auth, reconnect
 *   watchNetwork(S, processQueue, connect, updateConn),
 *   scanInput(onScan, focusScan)               // #scan-form, focus kept
 * }
 *
 * The login (device key once, then badge) keeps its state in localStorage
 * under pe.deviceKey, pe.token and pe.picker: one PDA, one session, either page.
 */
"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var ls = window.localStorage;
  var PE = window.PickEdge = window.PickEdge || {};

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

  /* Tone, buzz and flash for one answer's feedback (anything unknown is an
   * error); body[data-feedback] tells the page's CSS. Returns the kind. */
  function signal(kind) {
    if (kind !== "success" && kind !== "warning" && kind !== "error") { kind = "error"; }
    document.body.dataset.feedback = kind;
    beep(kind); buzz(kind); flash(kind);
    return kind;
  }

  PE.feedback = { beep: beep, buzz: buzz, flash: flash, signal: signal };

  // ------------------------------------------------------------------ HTTP

  function http(method, path, body, extraHeaders, token) {
    var headers = { "Content-Type": "application/json" };
    if (token) { headers.Authorization = "Bearer " + token; }
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

  PE.http = http;
  PE.errorCode = function (res) { return res.data && res.data.error ? res.data.error.code : ""; };
  PE.errorText = function (res) {
    return res.data && res.data.error ? res.data.error.message : "error " + res.status;
  };

  // ------------------------------------------------------------------ auth

  PE.auth = {
    /* The saved device key and session. */
    load: function () {
      return {
        deviceKey: ls.getItem("pe.deviceKey"),
        token: ls.getItem("pe.token"),
        picker: JSON.parse(ls.getItem("pe.picker") || "null")
      };
    },
    /* The device key as scanned or typed on the setup screen; returns it. */
    setDevice: function (value) {
      var key = value.trim();
      ls.setItem("pe.deviceKey", key);
      return key;
    },
    forgetDevice: function () { ls.removeItem("pe.deviceKey"); },
    save: function (token, picker) {
      ls.setItem("pe.token", token); ls.setItem("pe.picker", JSON.stringify(picker));
    },
    clear: function () { ls.removeItem("pe.token"); ls.removeItem("pe.picker"); },
    /* Badge login with the device key. on.ok(token, picker) once the session
     * is saved; on.unknownDevice() once the key is forgotten; on.refused(res);
     * on.offline() when the box cannot be reached. */
    login: function (deviceKey, badge, on) {
      return http("POST", "/api/v1/sessions", { badge: badge }, { "X-Device-Key": deviceKey }).then(function (res) {
        if (res.status === 201) {
          PE.auth.save(res.data.token, res.data.picker);
          on.ok(res.data.token, res.data.picker);
        } else if (PE.errorCode(res) === "unknown_device") {
          PE.auth.forgetDevice();
          on.unknownDevice();
        } else {
          on.refused(res);
        }
      }, function () { on.offline(); });
    },
    /* End the session on the box; the page forgets it whatever the answer. */
    logout: function (token) {
      http("DELETE", "/api/v1/sessions", undefined, undefined, token).catch(function () { return null; });
    }
  };

  /* A page's state: the saved login, the queue's and the socket's flags (what
   * retryLater, socket and watchNetwork use), and the page's own fields. */
  PE.state = function (own) {
    var saved = PE.auth.load();
    var S = {
      deviceKey: saved.deviceKey,
      token: saved.token,
      picker: saved.picker,
      busy: false,      // a scan of the queue is on its way
      ws: null,
      wsOpen: false,
      wsDelay: 500,
      httpOk: true,
      retryDelay: 500,
      retryTimer: null,
      answers: 0        // answers shown: body[data-answers], the tests wait on it
    };
    Object.keys(own).forEach(function (k) { S[k] = own[k]; });
    return S;
  };

  // ------------------------------------------------------------------ scans

  PE.newScanId = function () {
    // randomUUID needs a secure context; a PDA on plain http has none.
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20)].join("-");
  };

  /* The queue's next try after a network error or 5xx: S.retryDelay doubles. */
  PE.retryLater = function (S, fn) {
    clearTimeout(S.retryTimer);
    S.retryTimer = setTimeout(fn, S.retryDelay);
    S.retryDelay = Math.min(S.retryDelay * 2, 4000);
  };

  /* Sends S.queue one scan at a time, the oldest first. A scan leaves the
   * queue once the box answered it (on.answer(data)) or refused it
   * (on.refused(res), a 4xx); a network error, a 5xx or a 429 keeps it and
   * retries it with the same scan_id (on.retrying(res) first, once while the
   * box stays unreachable). on.send(item) -> the http promise; on.save()
   * stores the queue; on.changed() redraws the connection; on.expired() on 401. */
  PE.sendQueue = function sendQueue(S, on) {
    if (S.busy || !S.queue.length || !S.token) { return; }
    S.busy = true;
    var next = function () { sendQueue(S, on); };
    on.send(S.queue[0]).then(function (res) {
      S.busy = false;
      if (res.status === 200) {
        S.queue.shift(); on.save();
        S.httpOk = true; S.retryDelay = 500; on.changed();
        on.answer(res.data);
        next();
      } else if (res.status === 401) {
        on.expired();
      } else if (res.status >= 500 || res.status === 429) {
        // The box could not confirm it (restarting, disk or outbox full): the
        // scan stays queued and is retried with the same scan_id.
        if (S.httpOk) { on.retrying(res); }
        S.httpOk = false; on.changed(); PE.retryLater(S, next);
      } else {
        S.queue.shift(); on.save();
        on.refused(res);
        next();
      }
    }, function () {
      // The network dropped: keep the scan, retry it with the same scan_id.
      S.busy = false; S.httpOk = false; on.changed(); PE.retryLater(S, next);
    });
  };

  PE.showConn = function (online, waiting) {
    var c = $("conn");
    if (online) {
      c.className = "conn online"; c.textContent = "online";
    } else if (waiting) {
      c.className = "conn retrying"; c.textContent = "offline · " + waiting + " waiting";
    } else {
      c.className = "conn offline"; c.textContent = "offline";
    }
  };

  // ------------------------------------------------------------------ WebSocket

  /* The page's socket, kept in S.ws (S.token, S.wsOpen, S.wsDelay, S.httpOk):
   * it authenticates with its first message and reconnects with backoff.
   * on.connected() once the box accepted it; on.message(msg) for every other
   * message; on.closed() when it closes; on.expired() when the box closed it
   * because the session ended (4401, no reconnect). */
  PE.socket = function socket(S, on) {
    if (!S.token || S.ws) { return; }
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/ws");
    S.ws = ws;
    ws.onopen = function () { ws.send(JSON.stringify({ type: "auth", token: S.token })); };
    ws.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "message" && msg.text === "connected") {
        S.wsOpen = true; S.wsDelay = 500; S.httpOk = true;
        on.connected();
      } else {
        on.message(msg);
      }
    };
    ws.onclose = function (ev) {
      S.ws = null; S.wsOpen = false; on.closed();
      if (ev.code === 4401) { on.expired(); return; }
      if (S.token) { setTimeout(function () { socket(S, on); }, S.wsDelay); S.wsDelay = Math.min(S.wsDelay * 2, 5000); }
    };
  };

  /* Back online: the queue is tried again at once, the socket reconnects. */
  PE.watchNetwork = function (S, processQueue, connect, updateConn) {
    window.addEventListener("online", function () { S.retryDelay = 500; processQueue(); connect(); });
    window.addEventListener("offline", function () { S.httpOk = false; updateConn(); });
  };

  // ------------------------------------------------------------------ scan input

  /* One input takes every scan (keyboard-wedge scanners type, then Enter):
   * onScan(value, screen) for each non-empty one. The input keeps the focus,
   * since a wedge scanner types wherever the focus is. */
  PE.scanInput = function (onScan, focusScan) {
    $("scan-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var input = $("scan"), value = input.value.replace(/[\r\n]+$/, "");
      input.value = "";
      if (!value) { return; }
      onScan(value, document.body.dataset.screen);
    });
    document.addEventListener("click", function (ev) {
      if (ev.target.tagName !== "INPUT") { focusScan(); }
    });
    $("scan").addEventListener("blur", function () { setTimeout(focusScan, 0); });
  };
}());
