// The admin endpoint's status page at `/`: one self-contained HTML document (no external
// assets) that polls /pipelines and /logs/recent every second and draws a table of the
// pipelines and their stages, a small chart of each pipeline's acknowledged records per
// second over the last two minutes, and the last warnings and errors. With admin_token,
// open it as /#token=<token>: the token stays in the browser and goes in the
// Authorization header of its requests.
#pragma once

namespace pipehost::host {

inline constexpr const char* kStatusPage = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pipehost</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .6em} h2{font-size:1.05em;margin:1.4em 0 .4em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:.3em .6em;border-bottom:1px solid #e4e4e4;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left} tr.stage td{color:#666;font-size:.92em}
tr.stage td:first-child{padding-left:1.8em}
.running{color:#1a7f37}.paused{color:#9a6700}.restarting,.failed{color:#cf222e}.ended{color:#666}
canvas{vertical-align:middle} #problems td{text-align:left;white-space:normal}
#updated{color:#888;font-size:.85em} .warn{color:#9a6700} .error{color:#cf222e}
</style></head><body>
<h1>pipehost <span id="updated">connecting…</span></h1>
<table id="pipelines"><thead><tr><th>pipeline / stage</th><th>state</th><th>read/s</th>
<th>acked/s</th><th>rejected</th><th>in flight</th><th>lag</th><th>restarts</th><th>acked/s, 2 min</th></tr></thead>
<tbody></tbody></table>
<h2>Last warnings and errors</h2>
<table id="problems"><thead><tr><th>time</th><th>level</th><th>where</th><th>message</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? {Authorization: "Bearer " + token} : {};
const history = {}; let previous = null;
function cell(row, text, cls) { const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; }
function rate(now, before, field, seconds) {
  if (!before || seconds <= 0) return 0;
  return Math.max(0, (now[field] - before[field]) / seconds);
}
function chart(canvas, values) {
  const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  g.clearRect(0, 0, w, h); const max = Math.max(1, ...values);
  g.strokeStyle = "#0969da"; g.beginPath();
  values.forEach((v, i) => { const x = w - (values.length - 1 - i) * (w / 120), y = h - 1 - (v / max) * (h - 2);
    i ? g.lineTo(x, y) : g.moveTo(x, y); });
  g.stroke();
}
async function refresh() {
  try {
    const [p, l] = await Promise.all([fetch("/pipelines", {headers}), fetch("/logs/recent", {headers})]);
    if (!p.ok) throw new Error(p.status + " " + (await p.text()));
    const now = {at: performance.now(), list: await p.json()}, logs = l.ok ? await l.json() : [];
    const seconds = previous ? (now.at - previous.at) / 1000 : 0;
    const before = {}; if (previous) previous.list.forEach(x => before[x.name] = x);
    const body = document.querySelector("#pipelines tbody"); body.textContent = "";
    for (const x of now.list) {
      const b = before[x.name], acked = rate(x, b, "records_acknowledged", seconds);
      (history[x.name] = history[x.name] || []).push(acked); if (history[x.name].length > 120) history[x.name].shift();
      const row = body.insertRow(); row.dataset.pipeline = x.name;
      cell(row, x.name); cell(row, x.state, x.state).dataset.field = "state";
      cell(row, rate(x, b, "records_read", seconds).toFixed(1));
      cell(row, acked.toFixed(1));
      cell(row, x.records_rejected).dataset.field = "rejected";
      cell(row, x.in_flight_records); cell(row, x.lag === null ? "–" : x.lag); cell(row, x.restarts);
      const canvas = document.createElement("canvas"); canvas.width = 240; canvas.height = 28;
      cell(row, "").appendChild(canvas); chart(canvas, history[x.name]);
      x.stages.forEach((s, i) => {
        const bs = b && b.stages[i], r = body.insertRow(); r.className = "stage";
        cell(r, s.stage); cell(r, "");
        cell(r, "in " + rate(s, bs, "records_in", seconds).toFixed(1));
        cell(r, "out " + rate(s, bs, "records_out", seconds).toFixed(1));
        cell(r, s.records_rejected); cell(r, "cpu " + (100 * rate(s, bs, "cpu_seconds", seconds)).toFixed(1) + "%");
        cell(r, ""); cell(r, ""); cell(r, "");
      });
      const trouble = x.failure || x.stalled;
      if (trouble) { const r = body.insertRow(); r.className = "stage"; const td = cell(r, "! " + trouble, "failed"); td.colSpan = 9; }
    }
    const problems = document.querySelector("#problems tbody"); problems.textContent = "";
    for (const e of logs.slice().reverse()) {
      const row = problems.insertRow(); cell(row, e.time); cell(row, e.level, e.level); cell(row, e.origin); cell(row, e.message);
    }
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    previous = now;
  } catch (e) {
    document.getElementById("updated").textContent = "cannot reach pipehost: " + e.message;
  }
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
)html";

}  // namespace pipehost::host
