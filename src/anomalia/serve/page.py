"""The web page at ``/``: drop or pick images, see each one's score, verdict and overlay.

Plain HTML with one inline script and style, no build step and no external resources; the
Content-Security-Policy sent with it allows exactly that script (by its hash) and requests to
the service itself. The script asks ``ready`` for the model, posts the chosen files to
``score`` (with ``?maps=1`` when the model makes maps) and fills one table row per image.
``#status`` carries ``data-state`` (``loading``, ``idle``, ``busy``, ``done``, ``error``) and each
row ``data-verdict``, for people and for the browser test.
"""

from __future__ import annotations

import base64
import hashlib

SCRIPT = """
"use strict";
const $ = (id) => document.getElementById(id);
let model = null;

function setStatus(state, text) {
  const status = $("status");
  status.dataset.state = state;
  status.textContent = text;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function picture(src, alt) {
  const img = document.createElement("img");
  img.src = src;
  img.alt = alt;
  return img;
}

async function loadModel() {
  try {
    const response = await fetch("ready");
    const body = await response.json();
    if (response.status === 503 && body.message === "loading the model") {
      setStatus("loading", "loading the model\u2026");
      setTimeout(loadModel, 1000);
      return;
    }
    if (!response.ok) {
      setStatus("error", "model not ready: " + (body.message || response.status));
      return;
    }
    model = body.model;
    $("model").textContent = model.method + " \\u00b7 run " + model.run + " \\u00b7 " +
      model.in_channels + "\\u00d7" + model.image_size + "\\u00d7" + model.image_size +
      " \\u00b7 threshold " + model.threshold.toPrecision(4) + " \\u00b7 anomalia " +
      model.anomalia_version;
    $("key-row").hidden = !body.api_key_required;
    setStatus("idle", "drop images or pick them");
  } catch (err) {
    setStatus("error", "cannot reach the service: " + err);
  }
}

async function score(files) {
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const headers = {};
  const key = $("key").value.trim();
  if (key) headers["Authorization"] = "Bearer " + key;
  const withMaps = Boolean(model && model.has_maps);
  setStatus("busy", "scoring " + files.length + " image(s)\\u2026");
  let response, body;
  try {
    response = await fetch(withMaps ? "score?maps=1" : "score",
                           {method: "POST", body: form, headers: headers});
    body = await response.json();
  } catch (err) {
    setStatus("error", "request failed: " + err);
    return;
  }
  if (!response.ok) {
    setStatus("error", "error " + response.status + ": " + body.message);
    return;
  }
  const rows = $("results").tBodies[0];
  // Newest request on top, its images in the order they were picked.
  body.results.forEach((result, i) => {
    const row = rows.insertRow(i);
    row.dataset.verdict = result.is_anomaly ? "anomaly" : "normal";
    row.insertCell().append(picture(URL.createObjectURL(files[i]), files[i].name));
    cell(row, result.filename || files[i].name);
    cell(row, result.score === null ? "not finite" : result.score.toPrecision(5), "num");
    cell(row, result.is_anomaly ? "anomaly" : "normal", result.is_anomaly ? "bad" : "good");
    const overlay = row.insertCell();
    if (result.anomaly_map) {
      overlay.append(picture("data:image/png;base64," + result.anomaly_map.overlay_png,
                             "anomaly map of " + files[i].name));
    } else {
      overlay.textContent = withMaps ? "" : "no maps for this method";
    }
  });
  const n = body.results.filter((r) => r.is_anomaly).length;
  setStatus("done", "scored " + body.results.length + " image(s): " + n + " anomalous");
}

$("files").addEventListener("change", (event) => score(Array.from(event.target.files)));
const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  score(Array.from(event.dataTransfer.files));
});
loadModel();
"""

STYLE = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
#drop { border: 2px dashed #888; border-radius: 8px; padding: 2em; text-align: center; }
#drop.over { background: #eef; }
#status[data-state="error"] { color: #b00; }
table { border-collapse: collapse; margin-top: 1em; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; }
td img { width: 96px; height: 96px; object-fit: contain; image-rendering: pixelated; }
.num { font-variant-numeric: tabular-nums; }
.bad { color: #b00; font-weight: bold; }
.good { color: #070; }
"""

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>anomalia</title>
<style>{STYLE}</style>
</head>
<body>
<h1>anomalia</h1>
<p id="model">loading the model&hellip;</p>
<p id="key-row" hidden><label>API key <input id="key" type="password" autocomplete="off">
</label></p>
<div id="drop">
<p>Drop images here, or <label>pick them:
<input id="files" type="file" multiple accept="image/png,image/jpeg,image/bmp,image/tiff">
</label></p>
<p>PNG, JPEG, BMP or TIFF; each is converted and resized like the training images.</p>
</div>
<p id="status" data-state="loading" role="status">loading&hellip;</p>
<table id="results">
<thead><tr><th>image</th><th>file</th><th>score</th><th>verdict</th><th>anomaly map</th>
</tr></thead>
<tbody></tbody>
</table>
<script>{SCRIPT}</script>
</body>
</html>
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
#: Allows the page's own script and style and requests to this service; nothing else.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; "
    f"style-src 'sha256-{_STYLE_HASH}'; img-src data: blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
