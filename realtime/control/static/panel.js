// The swapcam panel: talks to the HTTP API of the running swapcam (same origin, cookie auth).
"use strict";
const $ = (id) => document.getElementById(id);
const state = { settings: null, history: [], faces: [] };
const STAGE_COLOURS = ["#58a6ff", "#3fb950", "#d29922", "#bc8cff", "#f778ba", "#79c0ff", "#ffa657"];

async function api(method, path, body, headers) {
  const init = { method, headers: headers || {} };
  if (body !== undefined) {
    if (body instanceof FormData) init.body = body;
    else { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) { showMessage(data.error || `${response.status} ${response.statusText}`); throw new Error(data.error); }
  return data;
}

function showMessage(line) {
  const li = document.createElement("li");
  li.textContent = line;
  $("messages").prepend(li);
  while ($("messages").children.length > 8) $("messages").lastChild.remove();
}

// --- settings
function renderSettings(s) {
  state.settings = s;
  const swap = $("swap");
  swap.textContent = s.swap ? "swap ON" : "swap OFF";
  swap.className = "big " + (s.swap ? "on" : "off");
  for (const el of $("options").elements) {
    if (!(el.name in s) || el === document.activeElement) continue;
    if (el.type === "checkbox") el.checked = !!s[el.name];
    else el.value = s[el.name] === null ? "" : s[el.name];
  }
  renderGallery();
}
async function patch(changes) { renderSettings(await api("PATCH", "/api/settings", changes)); }

$("swap").onclick = () => patch({ swap: !state.settings.swap }).catch(() => {});
$("options").addEventListener("change", (ev) => {
  const el = ev.target;
  let value;
  if (el.type === "checkbox") value = el.checked;
  else if (el.type === "number" || el.type === "range") value = el.value === "" ? null : Number(el.value);
  else value = el.value;
  patch({ [el.name]: value }).catch(() => api("GET", "/api/settings").then(renderSettings));
});

// --- gallery
async function loadFaces() { state.faces = await api("GET", "/api/faces"); renderGallery(); }
function renderGallery() {
  const live = state.settings && state.settings.face;
  const box = $("gallery");
  box.replaceChildren(...state.faces.map((f, i) => {
    const div = document.createElement("div");
    div.className = "face" + (f.id === live ? " live" : "");
    div.dataset.id = f.id;
    div.title = `${f.name} (${f.id}) — key ${i + 1}`;
    const img = document.createElement("img");
    img.src = `/api/faces/${f.id}/thumb`;
    img.alt = f.name;
    const n = document.createElement("span"); n.className = "n"; n.textContent = i + 1;
    const del = document.createElement("button"); del.className = "del"; del.textContent = "×"; del.title = "delete";
    del.onclick = (ev) => { ev.stopPropagation(); api("DELETE", `/api/faces/${f.id}`).then(loadFaces).catch(() => {}); };
    div.onclick = () => patch({ face: f.id }).catch(() => {});
    div.append(img, n, del);
    return div;
  }));
}
async function upload(files) {
  for (const file of files) {
    const form = new FormData();
    form.append("file", file, file.name);
    try { await api("POST", "/api/faces", form); } catch (e) { /* shown */ }
  }
  await loadFaces();
}
$("file").onchange = (ev) => upload(ev.target.files);
const drop = $("drop");
drop.ondragover = (ev) => { ev.preventDefault(); drop.classList.add("over"); };
drop.ondragleave = () => drop.classList.remove("over");
drop.ondrop = (ev) => { ev.preventDefault(); drop.classList.remove("over"); upload(ev.dataTransfer.files); };

// --- recording
$("rec").onclick = () => {
  const recording = $("rec").classList.contains("recording");
  api("POST", "/api/recording", { action: recording ? "stop" : "start" }).then(renderRecording).catch(() => {});
};
function renderRecording(r) {
  if (!r) { $("rec").disabled = true; return; }
  setText($("rec"), r.recording ? "stop recording" : "start recording");
  $("rec").classList.toggle("recording", r.recording);
  setText($("rec-info"), r.path ? `${r.path} — ${(r.bytes / 1e6).toFixed(1)} MB` : "");
}

// --- preview
// The preview stops when the page is hidden (a closed OBS dock, a background tab) or its rate is off: nothing is
// encoded for nobody. The rate is kept in this browser (an OBS dock keeps its own).
const PREVIEW_KEY = "swapcam.previewRate";
function previewRate() { return localStorage.getItem(PREVIEW_KEY) || "15"; }
function setStream(img, url) { if ((img.getAttribute("src") || "") !== url) img.src = url; }
function startPreview() {
  const rate = previewRate(), on = rate !== "0" && !document.hidden;
  setStream($("out"), on ? `/api/preview.mjpg?which=output&fps=${rate}` : "");
  setStream($("in"), on && $("show-input").checked ? `/api/preview.mjpg?which=input&fps=${rate}` : "");
}
document.addEventListener("visibilitychange", startPreview);
$("show-input").onchange = (ev) => { $("in-fig").hidden = !ev.target.checked; startPreview(); };
$("preview-rate").value = previewRate();
$("preview-rate").onchange = (ev) => { localStorage.setItem(PREVIEW_KEY, ev.target.value); startPreview(); };

// --- live figures
// The figures arrive 4 times a second; each update touches only what changed, in place: a software-rendered
// browser (an OBS dock) pays for every relayout and repaint on the cores the pipeline runs on.
function setText(el, text) { if (el.textContent !== text) el.textContent = text; }
function figureCell(key) {
  let cell = $("figures").querySelector(`[data-key="${key}"]`);
  if (!cell) {
    cell = document.createElement("div"); cell.dataset.key = key;
    const b = document.createElement("b"); const sp = document.createElement("span"); sp.textContent = key;
    cell.append(b, sp); if (key === "face") cell.className = "wide";
    $("figures").append(cell);
  }
  return cell;
}
function renderStages(stagesMs) {
  const stages = Object.entries(stagesMs).filter(([k]) => k !== "infer");
  const total = stages.reduce((a, [, v]) => a + v, 0) || 1, box = $("stages");
  if (box.children.length !== stages.length || stages.some(([k], i) => box.children[i].dataset.key !== k)) {
    box.replaceChildren(...stages.map(([k], i) => {
      const d = document.createElement("div"); d.dataset.key = k;
      d.style.background = STAGE_COLOURS[i % STAGE_COLOURS.length]; return d;
    }));
  }
  stages.forEach(([k, v], i) => {
    const d = box.children[i], width = `${((100 * v) / total).toFixed(1)}%`;
    if (d.style.width !== width) d.style.width = width;
    setText(d, `${k} ${v.toFixed(1)}`);
    const title = `${k}: ${v.toFixed(2)} ms per frame (last second)`;
    if (d.title !== title) d.title = title;
  });
}
function renderStatus(s) {
  const lat = s.latency_ms, drops = Object.values(s.drops).reduce((a, b) => a + b, 0);
  const cells = [["fps in", s.fps.in.toFixed(1)], ["fps out", s.fps.out.toFixed(1)], ["p50 ms", lat.p50.toFixed(1)],
    ["p95 ms", lat.p95.toFixed(1)], ["p99 ms", lat.p99.toFixed(1)], ["drops", String(drops)],
    ["face", s.face ? s.face.name : "none"]];
  for (const [key, value] of cells) {
    const cell = figureCell(key);
    setText(cell.firstChild, value);
    if (key === "face" && cell.title !== value) cell.title = value;
  }
  setText($("io"), `${s.source} → ${s.outputs.join(", ")}`);
  if (state.settings && s.swap !== state.settings.swap) api("GET", "/api/settings").then(renderSettings);
  if (state.settings && (s.face ? s.face.id : null) !== state.settings.face) api("GET", "/api/settings").then(renderSettings);
  renderRecording(s.recording);
  state.history.push({ fps: s.fps.out, p50: lat.p50, p95: lat.p95, drops });
  if (state.history.length > 120) state.history.shift();
  drawChart();
  renderStages(s.stages_ms);
  const known = new Set([...$("messages").children].map((li) => li.textContent));
  for (const line of s.messages) if (!known.has(line)) showMessage(line);
}
function drawChart() {
  const c = $("chart"), g = c.getContext("2d");
  const width = c.clientWidth || 600;
  if (c.width !== width) c.width = width; // setting it, even unchanged, reallocates and clears the canvas
  const h = c.height, w = c.width, hist = state.history;
  g.clearRect(0, 0, w, h);
  const top = Math.max(40, ...hist.map((p) => Math.max(p.fps, p.p95)));
  const series = [["fps", "#3fb950"], ["p50", "#58a6ff"], ["p95", "#d29922"]];
  for (const [key, colour] of series) {
    g.strokeStyle = colour; g.beginPath();
    hist.forEach((p, i) => { const x = (i / 119) * w, y = h - (p[key] / top) * (h - 12); i ? g.lineTo(x, y) : g.moveTo(x, y); });
    g.stroke();
  }
  g.fillStyle = "#9aa0aa"; g.font = "11px sans-serif";
  g.fillText(`fps (green), p50/p95 ms (blue/amber); top ${top.toFixed(0)}`, 6, 12);
}
function connectEvents() {
  const source = new EventSource("/api/events");
  source.onopen = () => { $("conn").textContent = "live"; };
  source.onmessage = (ev) => renderStatus(JSON.parse(ev.data));
  source.onerror = () => { $("conn").textContent = "disconnected"; };
}

api("GET", "/api/settings").then(renderSettings).then(loadFaces).catch(() => {});
startPreview();
connectEvents();
