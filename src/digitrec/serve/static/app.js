// digitrec drawing page: pointer-event drawing, live (debounced) prediction, probabilities,
// undo/clear, upload and drag-and-drop, and the 28x28 image the model saw. No dependencies.
"use strict";

const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const seen = document.getElementById("seen");
const $ = (id) => document.getElementById(id);
const DEBOUNCE_MS = 150;

let strokes = [];      // each stroke: {width, points: [[x, y], ...]}
let current = null;    // the stroke being drawn
let background = null; // an uploaded image, drawn under the strokes
let timer = null;
let sequence = 0;      // bumped by every change; answers to older requests are ignored

function clearCanvas() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function drawStroke(stroke) {
  ctx.strokeStyle = "#000";
  ctx.fillStyle = "#000";
  ctx.lineWidth = stroke.width;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const [first, ...rest] = stroke.points;
  if (rest.length === 0) {  // a tap is a dot
    ctx.beginPath();
    ctx.arc(first[0], first[1], stroke.width / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(first[0], first[1]);
  for (const [x, y] of rest) ctx.lineTo(x, y);
  ctx.stroke();
}

function redraw() {
  clearCanvas();
  if (background) drawContained(background);
  strokes.forEach(drawStroke);
}

function drawContained(image) {
  const scale = Math.min(canvas.width / image.width, canvas.height / image.height);
  const w = image.width * scale, h = image.height * scale;
  ctx.drawImage(image, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
}

function point(event) {
  const rect = canvas.getBoundingClientRect();
  return [(event.clientX - rect.left) * canvas.width / rect.width,
          (event.clientY - rect.top) * canvas.height / rect.height];
}

canvas.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  const pressure = event.pointerType === "pen" && event.pressure > 0 ? event.pressure : 0.5;
  current = {width: canvas.width / 14 * (0.7 + 0.6 * pressure), points: [point(event)]};
  strokes.push(current);
  drawStroke(current);
});

canvas.addEventListener("pointermove", (event) => {
  if (!current) return;
  current.points.push(point(event));
  redraw();
  schedule();
});

for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => {
    if (!current) return;
    current = null;
    schedule();
  });
}

function schedule() {
  clearTimeout(timer);
  sequence++;  // answers to requests sent before this change are now stale
  document.body.dataset.pending = "true";
  timer = setTimeout(predict, DEBOUNCE_MS);
}

function isEmpty() {
  return strokes.length === 0 && !background;
}

async function predict() {
  if (isEmpty()) {
    showIdle("Draw something to start.");
    return;
  }
  const id = sequence;
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  const multi = $("multi").checked;
  try {
    const response = await fetch(`/v1/predict?preprocessed=true&multi=${multi}`,
                                 {method: "POST", headers: {"Content-Type": "image/png"}, body: blob});
    const body = await response.json();
    if (id !== sequence) return;
    if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
    multi ? showNumber(body) : showDigit(body);
  } catch (error) {
    if (id === sequence) showIdle(`Error: ${error.message}`);
  }
}

function finish(status) {
  $("status").textContent = status;
  document.body.dataset.pending = "false";
}

function showIdle(status) {
  $("digit").classList.remove("refused");
  $("digit").textContent = "–";
  $("confidence").textContent = "";
  renderBars([]);
  renderSeen(null);
  finish(status);
}

function showDigit(result) {
  if (result.status === "blank") {
    showIdle("No ink found.");
    return;
  }
  renderBars(result.probabilities);
  renderSeen(result.preprocessed || null);
  $("digit").classList.toggle("refused", result.status === "not_digit");
  if (result.status === "not_digit") {
    const guess = result.top_k[0];
    $("digit").textContent = "not a digit";
    $("confidence").textContent = `best guess ${guess.digit} (${(100 * guess.probability).toFixed(0)}%)`;
    finish("That does not look like a digit.");
    return;
  }
  $("digit").textContent = result.digit === null ? "?" : String(result.digit);
  $("confidence").textContent = `${(100 * result.confidence).toFixed(1)}%`;
  finish(result.status === "ok" ? "Recognised." : "Not sure.");
}

function showNumber(result) {
  $("digit").classList.remove("refused");
  $("digit").textContent = result.number || "–";
  $("confidence").textContent = result.digits.length ? `${(100 * result.confidence).toFixed(1)}%` : "";
  renderBars([]);
  renderSeen(null);
  finish(result.digits.length
    ? "Digits: " + result.digits.map((d) => `${d.digit ?? "?"} ${(100 * d.confidence).toFixed(0)}%`).join(", ")
    : "No ink found.");
}

function renderBars(probabilities) {
  const best = probabilities.length ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  $("bars").replaceChildren(...Array.from({length: 10}, (_, digit) => {
    const p = probabilities[digit] || 0;
    const item = document.createElement("li");
    item.className = digit === best ? "best" : "";
    item.setAttribute("aria-label", `${digit}: ${(100 * p).toFixed(1)} percent`);
    const bar = document.createElement("span");
    bar.style.width = `${100 * p}%`;
    const track = document.createElement("div");
    track.className = "bar";
    track.append(bar);
    const label = document.createElement("span");
    label.textContent = String(digit);
    const value = document.createElement("span");
    value.textContent = `${(100 * p).toFixed(1)}%`;
    item.append(label, track, value);
    return item;
  }));
}

function renderSeen(pixels) {
  const small = seen.getContext("2d");
  const image = small.createImageData(28, 28);
  for (let i = 0; i < 28 * 28; i++) {
    const v = pixels ? Math.round(255 * pixels[Math.floor(i / 28)][i % 28]) : 0;
    image.data.set([v, v, v, 255], 4 * i);
  }
  small.putImageData(image, 0, 0);
}

function undo() {
  if (strokes.length) strokes.pop();
  else background = null;
  redraw();
  schedule();
}

function clearAll() {
  strokes = [];
  background = null;
  redraw();
  schedule();
}

function loadFile(file) {
  if (!file || !file.type.startsWith("image/")) {
    showIdle("That is not an image file.");
    return;
  }
  const image = new Image();
  image.onload = () => {
    strokes = [];
    background = image;
    redraw();
    schedule();
    URL.revokeObjectURL(image.src);
  };
  image.onerror = () => showIdle("The image could not be read.");
  image.src = URL.createObjectURL(file);
}

$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", clearAll);
$("multi").addEventListener("change", schedule);
$("file").addEventListener("change", (event) => loadFile(event.target.files[0]));
canvas.addEventListener("dragover", (event) => {
  event.preventDefault();
  canvas.classList.add("dragover");
});
canvas.addEventListener("dragleave", () => canvas.classList.remove("dragover"));
canvas.addEventListener("drop", (event) => {
  event.preventDefault();
  canvas.classList.remove("dragover");
  loadFile(event.dataTransfer.files[0]);
});
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "z") {
    event.preventDefault();
    undo();
  } else if (event.key === "Escape") {
    clearAll();
  }
});

fetch("/v1/model").then((r) => r.json()).then((m) => {
  const accuracy = m.test_accuracy ? `, ${(100 * m.test_accuracy).toFixed(2)}% on the ${m.dataset} test set` : "";
  $("model").textContent = `model: ${m.architecture}${accuracy}`;
}).catch(() => {});

clearCanvas();
renderBars([]);
renderSeen(null);
document.body.dataset.pending = "false";
