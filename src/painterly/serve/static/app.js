// A server started with --token: open the page as /?token=TOKEN; fetches send it as a header,
// images (which cannot) as a query parameter.
const TOKEN = new URLSearchParams(location.search).get("token") || "";
const AUTH = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
const withToken = (url) => (TOKEN ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(TOKEN)}` : url);

// painterly web page: plain JS, no external resources. Talks to /v1/methods and /v1/stylize.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { content: null, style: null, builtin: null, resultUrl: null, methods: {} };

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setStatus(text, cls) {
  const s = $("server-status");
  s.textContent = text;
  s.className = "status " + (cls || "");
}

function setupDrop(dropId, inputId, previewId, key) {
  const drop = $(dropId), input = $(inputId), preview = $(previewId);
  const take = (file) => {
    if (!file) return;
    if (file.type && !file.type.startsWith("image/")) {
      showError(`${file.name} is not an image`);
      return;
    }
    state[key] = file;
    if (key === "style") selectBuiltin(null);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    drop.classList.add("filled");
    drop.querySelector(".drop-hint").textContent = file.name;
    showError("");
  };
  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });
  input.addEventListener("change", () => take(input.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    take(e.dataTransfer.files[0]);
  });
}

function selectBuiltin(name) {
  state.builtin = name;
  for (const b of document.querySelectorAll("#builtin-styles button")) {
    b.setAttribute("aria-checked", String(b.dataset.name === name));
  }
  if (name) {
    state.style = null;
    $("style-file").value = "";
    const preview = $("style-preview");
    preview.src = withToken(`/v1/styles/${name}`);
    preview.hidden = false;
    $("style-drop").classList.add("filled");
    $("style-drop").querySelector(".drop-hint").textContent = name.replace(/_/g, " ");
  }
}

function updateMethodUi() {
  const m = $("method").value;
  for (const el of document.querySelectorAll(".adain-only")) el.hidden = m !== "adain";
  for (const el of document.querySelectorAll(".gatys-only")) el.hidden = m !== "gatys";
  const info = state.methods[m];
  const notes = {
    adain: "AdaIN: real-time, any style.",
    gatys: "Gatys: slow optimization, highest quality.",
    fast: "Fast network: styles baked into a trained model.",
  };
  $("method-note").textContent = info && !info.available
    ? `Not available here: ${info.reason}` : (info && info.reason) || notes[m] || "";
}

async function loadMethods() {
  try {
    const r = await fetch("/v1/methods", { headers: AUTH });
    const data = await r.json();
    state.methods = data.methods;
    const select = $("method");
    select.innerHTML = "";
    for (const [name, info] of Object.entries(data.methods)) {
      const opt = document.createElement("option");
      opt.value = name;
      opt.textContent = name + (info.available ? "" : " (unavailable)");
      select.appendChild(opt);
    }
    select.value = data.default_method || Object.keys(data.methods)[0];
    const box = $("builtin-styles");
    box.innerHTML = "";
    for (const s of data.builtin_styles) {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.name = s.name;
      b.title = s.name.replace(/_/g, " ");
      b.setAttribute("role", "radio");
      b.setAttribute("aria-checked", "false");
      const img = document.createElement("img");
      img.src = withToken(s.thumbnail);
      img.alt = b.title;
      b.appendChild(img);
      b.addEventListener("click", () => selectBuiltin(s.name));
      box.appendChild(b);
    }
    if (data.limits && data.limits.max_size) $("size").max = data.limits.max_size;
    updateMethodUi();
    setStatus(data.ready ? "ready" : "loading models…", data.ready ? "ok" : "");
    if (!data.ready) setTimeout(loadMethods, 2000);
  } catch (e) {
    setStatus("server unreachable", "bad");
    showError("Cannot reach the server: " + e.message);
  }
}

async function stylize(event) {
  event.preventDefault();
  showError("");
  if (!state.content) { showError("Choose a photo first."); return; }
  const method = $("method").value;
  if (method !== "fast" && !state.style && !state.builtin) {
    showError("Choose a style image or a built-in style.");
    return;
  }
  const form = new FormData();
  form.append("content", state.content);
  if (state.style) form.append("style", state.style);
  else if (state.builtin && method !== "fast") form.append("builtin_style", state.builtin);
  form.append("method", method);
  if (method === "adain") form.append("alpha", $("alpha").value);
  if (method === "adain" && $("network").value !== "auto") form.append("network", $("network").value);
  if ($("preserve-color").value) form.append("preserve_color", $("preserve-color").value);
  if ($("size").value) form.append("size", $("size").value);
  if (method === "gatys" && $("steps").value) form.append("steps", $("steps").value);

  const button = $("stylize");
  button.disabled = true;
  button.textContent = "Stylizing…";
  $("spinner").hidden = false;
  $("placeholder").hidden = true;
  $("result-box").classList.add("busy");
  const t0 = performance.now();
  try {
    const r = await fetch("/v1/stylize", { method: "POST", body: form, headers: { Accept: "image/png", ...AUTH } });
    if (!r.ok) {
      let msg = `${r.status} ${r.statusText}`;
      try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
      throw new Error(msg);
    }
    const blob = await r.blob();
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = URL.createObjectURL(blob);
    const img = $("result");
    img.src = state.resultUrl;
    img.hidden = false;
    const link = $("download");
    link.href = state.resultUrl;
    link.hidden = false;
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    $("result-info").textContent = `${r.headers.get("X-Painterly-Size") || ""} · ${method} · ${secs} s`;
  } catch (e) {
    showError(e.message);
    $("placeholder").hidden = !$("result").hidden;  // keep the last good result, if any
  } finally {
    $("result-box").classList.remove("busy");
    button.disabled = false;
    button.textContent = "Stylize";
    $("spinner").hidden = true;
  }
}

setupDrop("content-drop", "content-file", "content-preview", "content");
setupDrop("style-drop", "style-file", "style-preview", "style");
$("alpha").addEventListener("input", () => { $("alpha-value").textContent = Number($("alpha").value).toFixed(2); });
$("method").addEventListener("change", updateMethodUi);
$("form").addEventListener("submit", stylize);
loadMethods();

// ---------------------------------------------------------------------------------------------
// Live camera: frames go to /live over a WebSocket, at most two in flight (one being painted,
// the next arriving as the server becomes free, so the network is never idle between frames
// and no frame waits in the server's slot); each is the newest camera frame, sent once: a slow
// server or network drops frames instead of queueing them.
// A frame is 8 bytes of capture time (ms, performance.now()) then a JPEG; the painted frame
// comes back with that time, the network's ms, the server's ms for the frame, the dropped
// count, then a JPEG.
const liveParams = new URLSearchParams(location.search);
const live = {
  ws: null, stream: null, canvas: document.createElement("canvas"),
  // ?inflight=1: one frame at a time (lower latency, fewer frames/s on a slow machine)
  maxInFlight: Math.max(1, Math.min(4, Number(liveParams.get("inflight")) || 2)),
  // ?pace=0: send the next frame at once instead of when the server is about to be free
  pace: liveParams.get("pace") !== "0",
  // ?early=MS: how much earlier than the server's estimated free time a frame is timed to
  // arrive (default: 30% of the server's time a frame, at least 4 ms, which covers the jitter of
  // that time: measured, lite at 384 on 2 cores, 21.1-21.6 frames/s 4 ms early, 22.6-22.9 at 15)
  earlyMs: Number(liveParams.get("early")) || 0,
  // pacing: the server's ms a frame, a frame's ms from capture to the server (both smoothed),
  // and when the server will be free of the frames in flight
  serverMs: 0, leadMs: 0, freeAt: 0, timer: null,
  // how many of the server's frame times a frame of this page takes: 1 when the page has the
  // server to itself; more while the server drops this page's frames (other streams take turns
  // with it, so a frame sent on the server's own time waits, is replaced by the next and is
  // work thrown away on both sides): it grows while frames are dropped, shrinks back when not
  paceGain: 1, seenDropped: 0,
  // the frames in flight: [capture time, when it reaches the server]
  pending: [], cameraFrames: 0, sentFrame: -1,
  sentAt: 0, shownCapture: -1, shown: [], latency: [], model: [], dropped: 0, errors: [],
  settingsAcks: 0,
  // the stats line is rewritten at most this often (ms): each rewrite costs the page a layout
  // and a repaint, and a screen reader an announcement (the line is aria-live)
  statsMs: 500, statsAt: 0,
  // where a frame's latency goes (ms, the last 300): capture to sent, sent to answered, the
  // server's part of that, answered to shown
  stages: [], sentStamps: new Map(),
};
window.painterlyLive = live;  // tests and benchmarks read the page's own measurements

function liveError(message) {
  const box = $("live-error");
  box.textContent = message;
  box.hidden = !message;
  if (message) live.errors.push(message);
}

function liveSettings() {
  let method = $("method").value;
  if (method !== "adain" && method !== "fast") method = state.methods.fast && state.methods.fast.available ? "fast" : "adain";
  const msg = { type: "settings", method, size: Number($("live-size").value) };
  if (state.builtin) msg.style = state.builtin;
  else if (method === "fast") msg.style = "udnie";
  if (method === "adain") {
    msg.alpha = Number($("alpha").value);
    if ($("network").value !== "auto") msg.network = $("network").value;
    if (!state.builtin && state.styleData) msg.style_image = state.styleData;
    if (!state.builtin && !state.styleData) msg.style = "woman_with_hat";
  }
  if ($("preserve-color").value === "luminance") msg.preserve_color = "luminance";
  return msg;
}

function sendLiveSettings() {
  if (live.ws && live.ws.readyState === WebSocket.OPEN) live.ws.send(JSON.stringify(liveSettings()));
}

// Send a frame now, later or not at all: none in flight, at once; one or more, timed to reach
// the server as it finishes them (its time a frame, from its replies), so the frame waits in no
// slot and the server is never idle.
function pumpLive() {
  if (!live.ws || live.ws.readyState !== WebSocket.OPEN) return;
  if (live.pending.length >= live.maxInFlight) {
    if (performance.now() - live.sentAt < 3000) return;
    live.pending = [];  // a frame lost: start over
  }
  if (live.pending.length > 0 && live.pace) {
    // early: a frame that waits briefly costs less than a server left idle
    const early = live.earlyMs || Math.max(4, 0.3 * paceMs());
    const wait = live.freeAt - live.leadMs - early - performance.now();
    if (wait > 1) {
      if (!live.timer) live.timer = setTimeout(() => { live.timer = null; pumpLive(); }, wait);
      return;
    }
  }
  if (sendLiveFrame() && !live.pace) pumpLive();
}

// When the server is done with a frame ([capture time, arrival]) if it is busy until
// freeAt: it takes the frame when the frame arrives or when it is free, whichever is later.
function queuedAfter(freeAt, frame) {
  return Math.max(frame[1], freeAt) + paceMs();
}

// The server's time for one of this page's frames, as the page paces by it.
function paceMs() {
  return live.serverMs * live.paceGain;
}

function sendLiveFrame() {
  const video = $("live-camera");
  if (!video.videoWidth) return false;
  // Each camera frame once (where the browser reports new frames): a server faster than the
  // camera waits for the next frame instead of painting the same one again.
  if (live.cameraFrames > 0 && live.sentFrame === live.cameraFrames) return false;
  live.sentFrame = live.cameraFrames;
  const side = Number($("live-size").value);
  const scale = Math.min(1, side / Math.max(video.videoWidth, video.videoHeight));
  live.canvas.width = Math.round(video.videoWidth * scale);
  live.canvas.height = Math.round(video.videoHeight * scale);
  live.canvas.getContext("2d").drawImage(video, 0, 0, live.canvas.width, live.canvas.height);
  const captured = performance.now();
  live.sentAt = captured;
  const frame = [captured, captured + live.leadMs];
  live.pending.push(frame);
  live.freeAt = queuedAfter(live.freeAt, frame);
  live.canvas.toBlob(async (blob) => {
    if (!blob || !live.ws || live.ws.readyState !== WebSocket.OPEN) { live.pending = live.pending.filter((f) => f[0] !== captured); return; }
    const head = new DataView(new ArrayBuffer(8));
    head.setFloat64(0, captured, true);
    live.ws.send(new Blob([head.buffer, blob]));
    const sent = performance.now();
    live.leadMs = live.leadMs ? 0.8 * live.leadMs + 0.2 * (sent - captured + 1) : sent - captured + 1;
    live.sentStamps.set(captured, sent);
    if (live.sentStamps.size > 8) live.sentStamps.delete(live.sentStamps.keys().next().value);
  }, "image/jpeg", 0.85);
  return true;
}

function watchCamera(video) {
  if (!video.requestVideoFrameCallback) return;
  const tick = () => {
    if (!live.stream || video.srcObject !== live.stream) return;
    live.cameraFrames += 1;
    pumpLive();
    video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
}

function showLiveFrame(buffer) {
  const view = new DataView(buffer);
  const captured = view.getFloat64(0, true), modelMs = view.getFloat32(8, true);
  const serverMs = view.getFloat32(12, true);
  live.serverMs = live.serverMs ? 0.8 * live.serverMs + 0.2 * serverMs : serverMs;
  live.dropped = view.getUint32(16, true);
  const drops = live.dropped - live.seenDropped;
  live.seenDropped = live.dropped;
  live.paceGain = drops > 0 ? Math.min(8, live.paceGain * 1.25) : Math.max(1, live.paceGain * 0.97);
  const answered = performance.now(), sent = live.sentStamps.get(captured);
  // Decoded off the main thread; each frame is drawn when it is ready unless a newer one was
  // (swapping an <img>'s source drops a frame whose load has not finished).
  createImageBitmap(new Blob([buffer.slice(20)], { type: "image/jpeg" })).then((bitmap) => {
    if (captured <= live.shownCapture) { bitmap.close(); return; }
    live.shownCapture = captured;
    const out = $("live-output");
    if (out.width !== bitmap.width || out.height !== bitmap.height) {
      out.width = bitmap.width; out.height = bitmap.height;
    }
    out.getContext("2d").drawImage(bitmap, 0, 0);
    bitmap.close();
    const now = performance.now();
    if (sent !== undefined) {
      live.stages.push([sent - captured, answered - sent, serverMs, now - answered]);
      if (live.stages.length > 300) live.stages.shift();
    }
    live.shown.push(now);
    live.latency.push(now - captured);
    live.model.push(modelMs);
    if (live.shown.length > 5000) { live.shown.shift(); live.latency.shift(); live.model.shift(); }
    updateLiveStats();
  }, () => liveError("a painted frame could not be decoded"));
  // This frame is done, and any sent before it were dropped by the server (a newer one came
  // while it was busy): it is free when it has painted the ones still in flight.
  live.pending = live.pending.filter((f) => f[0] > captured);
  live.freeAt = live.pending.reduce(queuedAfter, answered);
  pumpLive();
}

function median(values) {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function updateLiveStats() {
  const now = performance.now();
  if (now - live.statsAt < live.statsMs) return;
  live.statsAt = now;
  const recent = live.shown.filter((t) => now - t < 3000);
  const fps = recent.length > 1 ? (recent.length - 1) / ((recent[recent.length - 1] - recent[0]) / 1000) : 0;
  const lat = live.latency.slice(-60), model = live.model.slice(-60);
  const sorted = [...lat].sort((a, b) => a - b);
  const p95 = sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] : NaN;
  $("live-stats").textContent = `${fps.toFixed(1)} frames/s · latency ${median(lat).toFixed(0)} ms ` +
    `(p95 ${p95.toFixed(0)}) · network ${median(model).toFixed(0)} ms a frame · ${live.dropped} dropped`;
}

async function startLive() {
  liveError("");
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (e) {
    liveError(`No camera: ${e.message}` + (window.isSecureContext ? "" :
      " (a browser opens a camera only on a secure page, https, or on localhost: start the server with --ssl-certfile)"));
    return;
  }
  const video = $("live-camera");
  video.srcObject = live.stream;
  await video.play().catch(() => {});
  watchCamera(video);
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(withToken(`${proto}//${location.host}/live`));
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  ws.onopen = () => sendLiveSettings();
  ws.onmessage = (event) => {
    if (typeof event.data !== "string") { showLiveFrame(event.data); return; }
    const msg = JSON.parse(event.data);
    if (msg.type === "error") { liveError(msg.error); live.pending.shift(); pumpLive(); return; }
    if (msg.type === "settings") { live.settingsAcks += 1; liveError(""); pumpLive(); }
  };
  ws.onclose = (event) => {
    if (live.ws === ws) stopLive(event.code === 1000 || event.code === 1005 ? "" : null);
  };
  $("live-start").textContent = "Stop camera";
  $("live-snapshot").disabled = false;
}

function stopLive(message) {
  if (live.ws) { const ws = live.ws; live.ws = null; try { ws.close(1000); } catch (_) { /* closed */ } }
  if (live.stream) { for (const t of live.stream.getTracks()) t.stop(); live.stream = null; }
  live.pending = [];
  if (live.timer) { clearTimeout(live.timer); live.timer = null; }
  $("live-start").textContent = "Start camera";
  $("live-snapshot").disabled = true;
  if (message !== null && message !== undefined) liveError(message);
}

// A snapshot: the camera's current frame at its full resolution, through the still path.
function snapshot() {
  const video = $("live-camera");
  if (!video.videoWidth) return;
  const c = document.createElement("canvas");
  c.width = video.videoWidth;
  c.height = video.videoHeight;
  c.getContext("2d").drawImage(video, 0, 0);
  c.toBlob((blob) => {
    state.content = new File([blob], "snapshot.png", { type: "image/png" });
    const preview = $("content-preview");
    preview.src = URL.createObjectURL(blob);
    preview.hidden = false;
    $("content-drop").classList.add("filled");
    $("content-drop").querySelector(".drop-hint").textContent = "snapshot.png";
    $("form").requestSubmit();
  }, "image/png");
}

// Style files are also sent to the live stream (as base64): keep the dropped file's data.
$("style-file").addEventListener("change", () => readStyleData($("style-file").files[0]));
$("style-drop").addEventListener("drop", (e) => readStyleData(e.dataTransfer.files[0]));
function readStyleData(file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => { state.styleData = reader.result; sendLiveSettings(); };
  reader.readAsDataURL(file);
}
for (const id of ["method", "alpha", "network", "preserve-color", "live-size"]) {
  $(id).addEventListener("change", sendLiveSettings);
}
$("builtin-styles").addEventListener("click", () => setTimeout(sendLiveSettings, 0));
$("live-start").addEventListener("click", () => (live.ws ? stopLive("") : startLive()));
$("live-snapshot").addEventListener("click", snapshot);
