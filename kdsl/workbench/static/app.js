// The workbench page: no framework, no build step. Every edit is sent to /api/evaluate
// (debounced); the answer fills the diagnostics, the rule's numbers and its matching rows.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { files: {}, path: null, offset: 0, timer: null, sent: 0, shown: 0, line: 1 };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(url, body) {
  const response = await fetch(url, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const data = await response.json();
  return { ok: response.ok, status: response.status, data };
}

function cursorLine() {
  const editor = $("editor");
  return editor.value.slice(0, editor.selectionStart).split("\n").length;
}

function gutter(bad) {  // bad: line -> message
  const lines = $("editor").value.split("\n").length;
  const gutterNode = $("gutter");
  gutterNode.replaceChildren(...Array.from({ length: lines }, (_, i) =>
    el("div", bad.has(i + 1) ? { class: "bad", title: bad.get(i + 1) } : {}, i + 1)));
  gutterNode.scrollTop = $("editor").scrollTop;
}

function schedule(delay = 120) {
  clearTimeout(state.timer);
  state.timer = setTimeout(evaluate, delay);
}

async function evaluate() {
  const id = ++state.sent;
  const request = { path: state.path, source: $("editor").value, line: cursorLine(), offset: state.offset };
  const { ok, data } = await api("/api/evaluate", request);
  if (id < state.shown) return;  // an older answer arriving late
  state.shown = id;
  if (!ok) { status(data.error || "error", "error"); return; }
  showDiagnostics(data.diagnostics);
  showRule(data.rule);
}

function showDiagnostics(diagnostics) {
  const list = $("diagnostics");
  gutter(new Map(diagnostics.map((d) => [d.line, d.message])));
  if (!diagnostics.length) { list.replaceChildren(el("li", { class: "ok" }, "✓ the rule base checks")); return; }
  list.replaceChildren(...diagnostics.map((d) => el("li", { onclick: () => jump(d.line, d.column) },
    `${d.line}:${d.column}: ${d.message}`)));
}

function jump(line, column) {
  const editor = $("editor");
  const lines = editor.value.split("\n");
  const at = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0) + Math.max(column - 1, 0);
  editor.focus();
  editor.setSelectionRange(at, at);
}

function percent(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + " %"; }

function showRule(rule) {
  for (const id of ["hits", "precision", "wins", "fixes", "breaks"]) $(id).textContent = "–";
  if (!rule) { $("rule-name").textContent = "–"; $("rows").replaceChildren(); $("conflicts").replaceChildren(); $("page").textContent = ""; return; }
  $("rule-name").textContent = `${rule.name} → ${rule.target} = ${rule.label}`;
  $("hits").textContent = rule.hits;
  $("precision").textContent = rule.labelled ? `${percent(rule.precision)} (${rule.correct}/${rule.labelled})` : "–";
  $("wins").textContent = rule.wins;
  $("fixes").textContent = rule.fixes;
  $("breaks").textContent = rule.breaks;
  $("model-note").textContent = rule.has_model ? "fixes / breaks: against model_label, with the other rules in place"
    : "no model_label column: fixes / breaks count against the other rules alone";
  $("conflicts").replaceChildren(...(rule.conflicts.length ? rule.conflicts.map((c) =>
    el("li", {}, `${c.rule} (${c.label}): ${c.rows} row(s)`)) : [el("li", {}, "none")]));
  const last = Math.min(rule.offset + rule.rows.length, rule.hits);
  $("page").textContent = rule.hits ? ` ${rule.offset + 1}–${last} of ${rule.hits} ` : " none ";
  $("rows").replaceChildren(...rule.rows.map((row) => showRow(row, rule.label)));
}

function highlighted(text, spans) {
  const parts = [];
  let at = 0;
  const chars = Array.from(text || "");  // offsets count code points, as the engine's do
  for (const s of [...spans].sort((a, b) => a.start - b.start)) {
    if (s.start < at) continue;
    parts.push(chars.slice(at, s.start).join(""), el("mark", {}, chars.slice(s.start, s.end).join("")));
    at = s.end;
  }
  parts.push(chars.slice(at).join(""));
  return parts;
}

function showRow(row, ruleLabel) {
  const meta = el("div", { class: "meta" }, `${row.id} · label `,
    el("span", row.label === ruleLabel ? {} : { class: "wrong" }, row.label ?? "–"),
    row.model_label !== undefined ? ` · model ${row.model_label ?? "–"}` : "");
  const fields = ["user", "agent", "ocr"].filter((f) => row[f] && (f === "user" || (row.matches || []).some((m) => m.field === f)));
  return el("div", { class: "row" }, meta, ...fields.map((f) =>
    el("div", { class: "text" }, el("b", {}, f + ": "), ...highlighted(row[f], (row.matches || []).filter((m) => m.field === f)))));
}

function status(text, kind) { const s = $("status"); s.textContent = text; s.className = kind || ""; }

async function save() {
  const { ok, data } = await api("/api/save", { path: state.path, source: $("editor").value });
  if (!ok) {
    if (data.diagnostics) { showDiagnostics(data.diagnostics); status(`not saved: ${data.diagnostics.length} problem(s)`, "error"); }
    else status(`not saved: ${data.error}`, "error");
    return;
  }
  state.files[state.path] = data.source;
  const line = cursorLine();
  $("editor").value = data.source;
  jump(line, 1);
  status(`saved ${state.path}`, "ok");
  loadUnresolved();
  schedule(0);
}

async function loadUnresolved() {
  const { data } = await api("/api/unresolved");
  $("unresolved-note").textContent = data.has_model
    ? `${data.rows} row(s) the model gets wrong and no rule decides, by label:`
    : `no model_label column: the ${data.rows} labelled row(s) no rule decides, by label:`;
  $("groups").replaceChildren(...data.groups.map((g) => el("li", {}, el("button", {
    type: "button", "data-label": g.label, onclick: (e) => candidates(g, e.currentTarget) },
    g.task ? el("span", { class: "task" }, g.task + " · ") : "", `${g.label} (${g.rows})`))));
}

async function candidates(group, button) {
  for (const b of document.querySelectorAll("#groups button")) b.classList.toggle("selected", b === button);
  $("candidates").replaceChildren(el("p", { class: "note" }, "mining…"));
  const { ok, data } = await api("/api/candidates?label=" + encodeURIComponent(group.label));
  if (!ok) { $("candidates").replaceChildren(el("p", { class: "note" }, data.error)); return; }
  const rows = data.candidates.map((c) => el("tr", {}, el("td", {}, el("code", {}, c.predicate)),
    el("td", {}, c.support), el("td", {}, percent(c.precision)), el("td", {}, c.score)));
  const examples = group.sample.map((r) => el("div", { class: "row" },
    el("div", { class: "meta" }, `${r.id} · model ${r.model_label ?? "–"}`),
    el("div", { class: "text" }, (r.user || (r.ocr || "").slice(0, 160)).replace(/\n/g, " / "))));
  $("candidates").replaceChildren(
    el("table", {}, el("tr", {}, el("th", {}, `candidates for ${group.label}`), el("th", {}, "rows"),
      el("th", {}, "precision"), el("th", {}, "score")), ...rows.slice(0, 12)),
    el("div", { class: "examples" }, el("h3", {}, "rows of this group"), ...examples));
}

async function start() {
  const { data } = await api("/api/files");
  state.files = data.files;
  $("dataset").textContent = `${data.rows} rows${data.has_model ? "" : " · no model_label"}`;
  $("file").replaceChildren(...Object.keys(data.files).map((name) => el("option", { value: name }, name)));
  open(Object.keys(data.files)[0]);
  loadUnresolved();
}

function open(path) {
  state.path = path;
  $("editor").value = state.files[path];
  state.offset = 0;
  schedule(0);
}

$("file").addEventListener("change", (e) => open(e.target.value));
$("editor").addEventListener("input", () => { state.offset = 0; schedule(); });
$("editor").addEventListener("scroll", () => { $("gutter").scrollTop = $("editor").scrollTop; });
for (const event of ["click", "keyup"]) $("editor").addEventListener(event, () => {
  const line = cursorLine();
  if (line !== state.line) { state.line = line; state.offset = 0; schedule(); }
});
$("save").addEventListener("click", save);
$("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - 20); schedule(0); });
$("next").addEventListener("click", () => { state.offset += 20; schedule(0); });
start();
