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
