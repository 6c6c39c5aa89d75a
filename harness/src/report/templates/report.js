// Draws the report's timeline, latency and throughput charts on canvases
// from the inlined JSON. No libraries, no network. Each canvas records how
// much it drew in data-drawn, which the browser test reads.
// Hand-written because the page must open offline as one file: these three
// charts are under 10 KB of script, where a charting library inlined into
// every report would be far larger and need a build step of its own.
"use strict";
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    errors.push(String(e.message));
    document.body.setAttribute("data-errors", String(errors.length));
  });
  var D = JSON.parse(document.getElementById("report-data").textContent);
  var COLORS = ["#43a047", "#e53935", "#fbc02d"];
  var ROLE_COLORS = { stuck: "#b71c1c", concurrent: "#ff6d00", prefix: "#1565c0", lost: "#6a1b9a", witness: "#00838f", cycle: "#c2185b" };
  var LANE_PX = 16, AXIS_PX = 22, LABEL_PX = 46;
  var end = Math.max(D.end_ms, 1);
  var view = { t0: 0, t1: end };
  var keyFilter = -1;

  function sizeCanvas(canvas, cssHeight) {
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.parentElement.clientWidth || 1200;
    canvas.style.height = cssHeight + "px";
    canvas.width = Math.floor(width * ratio);
    canvas.height = Math.floor(cssHeight * ratio);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return { ctx: ctx, w: width, h: cssHeight };
  }

  function xOf(t, w) { return LABEL_PX + (t - view.t0) / (view.t1 - view.t0) * (w - LABEL_PX - 8); }

  function shadeSpans(ctx, w, top, height, x) {
    D.spans.forEach(function (s) {
      var a = x(s[1]), b = x(s[2]);
      if (b < LABEL_PX || a > w) return;
      ctx.fillStyle = "rgba(120,120,220,0.13)";
      ctx.fillRect(Math.max(a, LABEL_PX), top, Math.max(b - Math.max(a, LABEL_PX), 1), height);
      ctx.fillStyle = "#5c5cb0";
      ctx.font = "10px sans-serif";
      ctx.fillText(s[0], Math.max(a, LABEL_PX) + 2, top + 10);
    });
  }

  function timeAxis(ctx, w, y, x, t0, t1) {
    ctx.fillStyle = "#555"; ctx.font = "10px sans-serif";
    var span = t1 - t0, step = Math.pow(10, Math.floor(Math.log10(span / 5 || 1)));
    if (span / step > 12) step *= 5; else if (span / step > 6) step *= 2;
    for (var t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      var px = x(t);
      ctx.fillRect(px, y, 1, 4);
      ctx.fillText(t >= 1000 ? (t / 1000).toFixed(step >= 1000 ? 0 : 2) + " s" : t.toFixed(step >= 1 ? 0 : 2) + " ms", px + 2, y + 14);
    }
  }

  var tl = document.getElementById("timeline");
  var hitBoxes = [];
  function drawTimeline() {
    var lanes = D.processes.length;
    var s = sizeCanvas(tl, Math.max(lanes * LANE_PX + AXIS_PX + 14, 80));
    var ctx = s.ctx, w = s.w;
    var x = function (t) { return xOf(t, w); };
    ctx.clearRect(0, 0, w, s.h);
    shadeSpans(ctx, w, 0, lanes * LANE_PX + 14, x);
    ctx.fillStyle = "#777"; ctx.font = "10px sans-serif";
    D.processes.forEach(function (p, i) { ctx.fillText("p" + p, 2, 14 + i * LANE_PX + 11); });
    hitBoxes = [];
    var drawn = 0, marked = 0;
    var highlights = [];
    for (var i = 0; i < D.timeline.length; i++) {
      var op = D.timeline[i];
      if (keyFilter >= 0 && op[4] !== keyFilter) continue;
      var t1 = op[2] === null ? end : op[2];
      if (t1 < view.t0 || op[1] > view.t1) continue;
      var a = Math.max(x(op[1]), LABEL_PX), b = Math.min(x(t1), w);
      var y = 14 + op[0] * LANE_PX + 2;
      ctx.fillStyle = COLORS[op[3]];
      ctx.fillRect(a, y, Math.max(b - a, 1), LANE_PX - 4);
      if (op[7]) highlights.push([a, y, Math.max(b - a, 2), op[7]]);
      if (b - a >= 2) hitBoxes.push([a, y, b, y + LANE_PX - 4, i]);
      drawn++;
    }
    highlights.forEach(function (h) {
      ctx.strokeStyle = ROLE_COLORS[h[3]] || "#000"; ctx.lineWidth = h[3] === "stuck" ? 3 : 2;
      ctx.strokeRect(h[0] - 1, h[1] - 1, h[2] + 2, LANE_PX - 2);
      marked++;
    });
    timeAxis(ctx, w, lanes * LANE_PX + 16, x, view.t0, view.t1);
    tl.setAttribute("data-drawn", String(drawn));
    tl.setAttribute("data-marked", String(marked));
    document.getElementById("view-range").textContent =
      (view.t0 / 1000).toFixed(3) + " s – " + (view.t1 / 1000).toFixed(3) + " s, " + drawn + " operations drawn";
  }

  function zoom(factor, around) {
    var c = around === undefined ? (view.t0 + view.t1) / 2 : around;
    var t0 = c - (c - view.t0) * factor, t1 = c + (view.t1 - c) * factor;
    if (t1 - t0 < 0.01) return;
    view.t0 = Math.max(t0, -end * 0.05); view.t1 = Math.min(t1, end * 1.05);
    drawAll();
  }
  function focus() {
    if (!D.focus) { view.t0 = 0; view.t1 = end; drawAll(); return; }
    var pad = Math.max((D.focus[1] - D.focus[0]) * 0.5, end * 0.002, 1e-4);
    view.t0 = D.focus[0] - pad; view.t1 = D.focus[1] + pad; drawAll();
  }
  document.getElementById("zoom-in").onclick = function () { zoom(0.5); };
  document.getElementById("zoom-out").onclick = function () { zoom(2); };
  document.getElementById("zoom-all").onclick = function () { view.t0 = 0; view.t1 = end; drawAll(); };
  document.getElementById("zoom-focus").onclick = focus;
  var select = document.getElementById("key-filter");
  D.keys.forEach(function (k, i) {
    if (i > 2000) return;
    var o = document.createElement("option"); o.value = String(i); o.textContent = k || "(no key)"; select.appendChild(o);
  });
  select.onchange = function () { keyFilter = Number(select.value); drawAll(); };
  tl.addEventListener("wheel", function (e) {
    e.preventDefault();
    var rect = tl.getBoundingClientRect();
    var frac = (e.clientX - rect.left - LABEL_PX) / (rect.width - LABEL_PX - 8);
    zoom(e.deltaY < 0 ? 0.8 : 1.25, view.t0 + frac * (view.t1 - view.t0));
  }, { passive: false });
  var drag = null;
  tl.addEventListener("mousedown", function (e) { drag = { x: e.clientX, t0: view.t0, t1: view.t1 }; });
  window.addEventListener("mouseup", function () { drag = null; });
  var tip = document.getElementById("tooltip");
  tl.addEventListener("mousemove", function (e) {
    var rect = tl.getBoundingClientRect();
    if (drag) {
      var dt = (e.clientX - drag.x) / (rect.width - LABEL_PX - 8) * (drag.t1 - drag.t0);
      view.t0 = drag.t0 - dt; view.t1 = drag.t1 - dt; drawAll(); return;
    }
    var px = e.clientX - rect.left, py = e.clientY - rect.top, hit = null;
    for (var i = 0; i < hitBoxes.length && !hit; i++) {
      var h = hitBoxes[i];
      if (px >= h[0] && px <= h[2] && py >= h[1] && py <= h[3]) hit = D.timeline[h[4]];
    }
    if (!hit) { tip.style.display = "none"; return; }
    var lat = hit[2] === null ? "never completed" : (hit[2] - hit[1]).toFixed(3) + " ms";
    tip.textContent = "p" + D.processes[hit[0]] + " key " + D.keys[hit[4]] + "\n" + hit[6] + "\nline " + hit[5] +
      ", " + (hit[1] / 1000).toFixed(4) + " s" +
      (D.wall_start_ms !== null ? " (" + new Date(D.wall_start_ms + hit[1]).toISOString() + ")" : "") +
      ", " + lat + (hit[7] ? "\n" + hit[7] : "");
    tip.style.left = (e.clientX + 12) + "px"; tip.style.top = (e.clientY + 12) + "px"; tip.style.display = "block";
  });
  tl.addEventListener("mouseleave", function () { tip.style.display = "none"; });

  function drawLatency() {
    var canvas = document.getElementById("latency");
    var s = sizeCanvas(canvas, 260), ctx = s.ctx, w = s.w, h = s.h;
    var x = function (t) { return xOf(t, w); };
    var max = 1, min = Infinity;
    D.latency.forEach(function (p) { if (p[1] > max) max = p[1]; if (p[1] > 0 && p[1] < min) min = p[1]; });
    var lo = Math.log10(Math.min(min === Infinity ? 0.1 : min, 0.1)), hi = Math.log10(max * 1.2);
    var y = function (ms) { return 8 + (h - 40) * (1 - (Math.log10(Math.max(ms, 1e-3)) - lo) / (hi - lo)); };
    shadeSpans(ctx, w, 0, h - 30, x);
    var drawn = 0;
    D.latency.forEach(function (p) {
      if (p[0] < view.t0 || p[0] > view.t1) return;
      ctx.fillStyle = COLORS[p[2]];
      ctx.fillRect(x(p[0]) - 1.5, y(p[1]) - 1.5, 3, 3);
      drawn++;
    });
    ctx.fillStyle = "#555"; ctx.font = "10px sans-serif";
    for (var e = Math.ceil(lo); e <= hi; e++) {
      ctx.fillRect(LABEL_PX - 4, y(Math.pow(10, e)), 4, 1);
      ctx.fillText(Math.pow(10, e) >= 1 ? Math.pow(10, e) + " ms" : Math.pow(10, e).toFixed(Math.max(-e, 0)) + " ms", 2, y(Math.pow(10, e)) + 3);
    }
    timeAxis(ctx, w, h - 28, x, view.t0, view.t1);
    canvas.setAttribute("data-drawn", String(drawn));
  }

  function drawThroughput() {
    var canvas = document.getElementById("throughput");
    var s = sizeCanvas(canvas, 260), ctx = s.ctx, w = s.w, h = s.h;
    var x = function (t) { return xOf(t, w); };
    var T = D.throughput, n = T.ok.length, max = 1;
    for (var i = 0; i < n; i++) max = Math.max(max, T.ok[i] + T.fail[i] + T.info[i]);
    var y = function (v) { return 8 + (h - 40) * (1 - v / max); };
    shadeSpans(ctx, w, 0, h - 30, x);
    var drawn = 0;
    for (i = 0; i < n; i++) {
      var t = i * T.bucket_ms;
      if (t + T.bucket_ms < view.t0 || t > view.t1) continue;
      var a = x(t), b = x(t + T.bucket_ms), base = 0;
      [T.ok[i], T.fail[i], T.info[i]].forEach(function (v, c) {
        ctx.fillStyle = COLORS[c];
        ctx.fillRect(Math.max(a, LABEL_PX), y(base + v), Math.max(b - Math.max(a, LABEL_PX), 1), y(base) - y(base + v));
        base += v;
      });
      drawn++;
    }
    ctx.fillStyle = "#555"; ctx.font = "10px sans-serif";
    ctx.fillText(Math.round(max) + "/s", 2, 14); ctx.fillText("0", 2, y(0));
    timeAxis(ctx, w, h - 28, x, view.t0, view.t1);
    canvas.setAttribute("data-drawn", String(drawn));
  }

  // Membership lanes: each mark holds from its time to the next one's.
  function drawMembership() {
    var M = D.membership;
    if (!M.length) return;
    document.getElementById("membership-section").hidden = false;
    var canvas = document.getElementById("membership");
    var nodes = [];
    M.forEach(function (m) { m[1].concat(m[2]).forEach(function (n) { if (nodes.indexOf(n) < 0) nodes.push(n); }); });
    nodes.sort(function (a, b) { return parseInt(a.slice(1), 10) - parseInt(b.slice(1), 10); });
    var s = sizeCanvas(canvas, nodes.length * LANE_PX + AXIS_PX + 14), ctx = s.ctx, w = s.w;
    var x = function (t) { return xOf(t, w); };
    ctx.clearRect(0, 0, w, s.h);
    shadeSpans(ctx, w, 0, nodes.length * LANE_PX + 14, x);
    ctx.fillStyle = "#777"; ctx.font = "10px sans-serif";
    nodes.forEach(function (n, i) { ctx.fillText(n, 2, 14 + i * LANE_PX + 11); });
    var drawn = 0;
    M.forEach(function (m, k) {
      var t1 = k + 1 < M.length ? M[k + 1][0] : end;
      if (t1 < view.t0 || m[0] > view.t1) return;
      var a = Math.max(x(m[0]), LABEL_PX), b = Math.min(x(t1), w);
      m[1].forEach(function (n) {
        var learner = m[2].indexOf(n) >= 0;
        ctx.fillStyle = learner ? COLORS[2] : COLORS[0];
        ctx.fillRect(a, 14 + nodes.indexOf(n) * LANE_PX + 2, Math.max(b - a, 1), LANE_PX - 4);
        drawn++;
      });
    });
    timeAxis(ctx, w, nodes.length * LANE_PX + 16, x, view.t0, view.t1);
    canvas.setAttribute("data-drawn", String(drawn));
  }

  // Clock lanes: each mark holds for its node until that node's next one.
  function drawClocks() {
    var C = D.clocks;
    if (!C.length) return;
    document.getElementById("clocks-section").hidden = false;
    var canvas = document.getElementById("clocks");
    var nodes = [];
    C.forEach(function (c) { if (nodes.indexOf(c[1]) < 0) nodes.push(c[1]); });
    nodes.sort(function (a, b) { return parseInt(a.slice(1), 10) - parseInt(b.slice(1), 10); });
    var s = sizeCanvas(canvas, nodes.length * LANE_PX + AXIS_PX + 14), ctx = s.ctx, w = s.w;
    var x = function (t) { return xOf(t, w); };
    ctx.clearRect(0, 0, w, s.h);
    shadeSpans(ctx, w, 0, nodes.length * LANE_PX + 14, x);
    ctx.font = "10px sans-serif";
    nodes.forEach(function (n, i) { ctx.fillStyle = "#777"; ctx.fillText(n, 2, 14 + i * LANE_PX + 11); });
    var drawn = 0;
    C.forEach(function (c, k) {
      if (c[2] === 0) return;
      var next = end;
      for (var j = k + 1; j < C.length; j++) { if (C[j][1] === c[1]) { next = C[j][0]; break; } }
      if (next < view.t0 || c[0] > view.t1) return;
      var a = Math.max(x(c[0]), LABEL_PX), b = Math.min(x(next), w), top = 14 + nodes.indexOf(c[1]) * LANE_PX + 2;
      ctx.fillStyle = c[2] === null ? COLORS[2] : (c[2] < 0 ? COLORS[1] : COLORS[0]);
      ctx.fillRect(a, top, Math.max(b - a, 1), LANE_PX - 4);
      ctx.fillStyle = "#000"; ctx.fillText(c[3], a + 2, top + 9);
      drawn++;
    });
    timeAxis(ctx, w, nodes.length * LANE_PX + 16, x, view.t0, view.t1);
    canvas.setAttribute("data-drawn", String(drawn));
  }

  function drawAll() { drawTimeline(); drawMembership(); drawClocks(); drawLatency(); drawThroughput(); }
  window.addEventListener("resize", drawAll);
  if (D.focus) focus(); else drawAll();
  document.body.setAttribute("data-rendered", "yes");
})();
