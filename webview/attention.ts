/**
 * The attention panel: prompt form, layer / head / mode selectors, the heatmap with hover and
 * keyboard cursor, the per-layer chart of attention on the instruction (base vs tuned), the gates,
 * and PNG / SVG export.
 */
import type { AttentionReport } from "../engine/analysis/attention";
import type { AttentionToHost, AttentionToWebview, AttentionView } from "../extension/messages";
import { cellAt, drawHeatmap, heatmapSvg, themeColors, type HeatmapData, type Layout, type Mode } from "./heatmap";
import { fmt } from "./line-chart";
import { button, dropdown, h, progressRing, radioGroup, row, textArea, textField } from "./ui";
import { connect } from "./vscode-api";

interface Selection {
  layer: number;
  head: number; // -1 = mean over heads
  mode: Mode;
}

const host = connect<AttentionToHost, AttentionToWebview, Selection>((m) => m.type === "view" && show(m.view));
const sel: Selection = host.getState() ?? { layer: -1, head: -1, mode: "tuned" };
let view: AttentionView | undefined;
let layout: Layout | undefined;
let cursor: [number, number] = [0, 0];

const app = document.getElementById("app")!;
const who = h("p", "muted");
const prompt = textField("Instruction", { id: "att-prompt", size: 50 });
const input = textArea("Input (Alpaca context, optional)", { id: "att-input", rows: 2 });
const response = textArea("Response (empty: the tuned model answers)", { id: "att-response", rows: 2 });
const analyze = button("Analyze", () => host.post({ type: "analyze", prompt: prompt.value, input: input.value, response: response.value }), { id: "analyze" });
const ring = progressRing();
const error = h("p", "error");
const layerPick = dropdown("Layer", [], { id: "layer", onChange: (v) => update({ layer: Number(v) }) });
const headPick = dropdown("Head", [], { id: "head", onChange: (v) => update({ head: Number(v) }) });
const modePick = radioGroup("Show", [["base", "Base"], ["tuned", "Excitor"], ["diff", "Difference (Excitor − base)"]], sel.mode, (v) => update({ mode: v as Mode }), "mode");
const exportPng = button("Export PNG", () => exportAs("png"), { secondary: true, id: "export-png" });
const exportSvg = button("Export SVG", () => exportAs("svg"), { secondary: true, id: "export-svg" });
const canvas = h("canvas", "heatmap");
canvas.id = "heatmap";
canvas.tabIndex = 0;
canvas.setAttribute("role", "img");
const tip = h("div", "tip");
tip.id = "heatmap-tip";
tip.setAttribute("aria-live", "polite");
const legend = h("p", "muted legend");
const massChart = h("div", "mass");
const gates = h("div", "gates");
const results = h("div", "results");
const mapWrap = h("div", "map-wrap");
mapWrap.append(canvas);
const controls = row(layerPick.el, headPick.el, modePick.el, exportPng, exportSvg);
results.append(controls, legend, mapWrap, tip, h("h3", undefined, "Attention of response tokens on the instruction, per layer"), massChart, h("h3", undefined, "Gates"), gates);
const form = h("div", "form");
form.append(prompt.el, input.el, response.el, row(analyze, ring));
app.append(h("h2", undefined, "Attention"), who, form, error, results);

function update(s: Partial<Selection>): void {
  Object.assign(sel, s);
  host.setState(sel);
  drawMap();
}

function show(v: AttentionView): void {
  view = v;
  who.textContent = `Model: ${v.modelLabel} · adapter: ${v.adapterLabel}`;
  if (document.activeElement !== prompt.el) prompt.value = v.prompt;
  input.value = v.input;
  response.value = v.response;
  analyze.disabled = v.busy;
  ring.hidden = !v.busy;
  error.textContent = v.error ? `Could not compute attention: ${v.error}` : "";
  document.body.dataset.busy = String(v.busy);
  results.hidden = !v.report;
  const r = v.report;
  if (!r) return;
  const L = r.layers.length;
  if (sel.layer < 0 || sel.layer >= L) sel.layer = r.layers.findLast((l) => l.adapted)?.layer ?? L - 1;
  if (sel.head >= r.numHeads) sel.head = -1;
  layerPick.setOptions(r.layers.map((l) => [String(l.layer), `${l.layer}${l.adapted ? " (adapted)" : ""}`]), String(sel.layer));
  headPick.setOptions([["-1", "mean over heads"], ...Array.from({ length: r.numHeads }, (_, i) => [String(i), `head ${i}`] as [string, string])], String(sel.head));
  cursor = [r.response[0] < r.tokens.length ? r.response[0] : 0, Math.max(0, r.instruction[0])];
  drawMap();
  drawMass(r);
  drawGates(r);
}

function matrix(r: AttentionReport, layer: number, head: number, mode: Mode): number[][] {
  const l = r.layers[layer];
  const pick = (p: number[][][]) => (head >= 0 ? p[head] : p[0].map((line, q) => line.map((_, k) => p.reduce((s, hp) => s + hp[q][k], 0) / p.length)));
  const base = pick(l.base);
  if (mode === "base") return base;
  const tuned = pick(l.tuned);
  return mode === "tuned" ? tuned : tuned.map((line, q) => line.map((v, k) => v - base[q][k]));
}

function data(): HeatmapData | undefined {
  const r = view?.report;
  if (!r) return undefined;
  return { tokens: r.tokens, values: matrix(r, sel.layer, sel.head, sel.mode), mode: sel.mode, instruction: r.instruction, response: r.response };
}

function caption(): string {
  const what = sel.mode === "base" ? "base model" : sel.mode === "tuned" ? "with the Excitor adapter" : "difference, Excitor − base";
  return `Layer ${sel.layer}, ${sel.head < 0 ? "mean over heads" : `head ${sel.head}`}, ${what}`;
}

function drawMap(): void {
  const d = data();
  if (!d) return;
  layout = drawHeatmap(canvas, d, themeColors(), cursor);
  canvas.setAttribute("aria-label", `${caption()}. ${d.tokens.length} by ${d.tokens.length} tokens. Arrow keys move the cursor.`);
  legend.textContent = `${caption()}. Rows: the token that attends (query); columns: the token attended to (key). The dashed box marks the instruction; the solid box the response.${sel.mode === "diff" ? " Blue: more attention with the adapter; red: less." : " Brighter: more attention."}`;
  describe(cursor);
}

function describe(c: [number, number]): void {
  const r = view?.report;
  const d = data();
  if (!r || !d) return;
  const [q, k] = c;
  const b = matrix(r, sel.layer, sel.head, "base")[q][k];
  const t = matrix(r, sel.layer, sel.head, "tuned")[q][k];
  tip.textContent = `query ${q} ${JSON.stringify(r.tokens[q])} → key ${k} ${JSON.stringify(r.tokens[k])}: ${d.values[q][k].toFixed(4)} (base ${b.toFixed(4)}, Excitor ${t.toFixed(4)})`;
}

canvas.addEventListener("mousemove", (e) => {
  const r = view?.report;
  if (!layout || !r) return;
  const box = canvas.getBoundingClientRect();
  const c = cellAt(layout, r.tokens.length, e.clientX - box.left, e.clientY - box.top);
  if (c) describe(c);
});
canvas.addEventListener("click", (e) => {
  const r = view?.report;
  if (!layout || !r) return;
  const box = canvas.getBoundingClientRect();
  const c = cellAt(layout, r.tokens.length, e.clientX - box.left, e.clientY - box.top);
  if (c) {
    cursor = c;
    drawMap();
  }
});
canvas.addEventListener("keydown", (e) => {
  const m = view?.report?.tokens.length ?? 0;
  if (!m) return;
  const moves: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
  const mv = moves[e.key];
  if (mv) cursor = [Math.max(0, Math.min(m - 1, cursor[0] + mv[0])), Math.max(0, Math.min(m - 1, cursor[1] + mv[1]))];
  else if (e.key === "Home") cursor = [cursor[0], 0];
  else if (e.key === "End") cursor = [cursor[0], m - 1];
  else return;
  e.preventDefault();
  drawMap();
});
// Theme switches change the CSS variables on <body>: redraw with the new colours.
new MutationObserver(() => drawMap()).observe(document.body, { attributes: true, attributeFilter: ["class"] });

function drawMass(r: AttentionReport): void {
  const NS = "http://www.w3.org/2000/svg";
  const W = 480;
  const rowH = 22;
  const H = 24 + rowH * r.instructionMass.length;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  const max = Math.max(1e-9, ...r.instructionMass.flatMap((m) => [m.base, m.tuned]));
  const el = (tag: string, a: Record<string, string | number>, text?: string) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(a)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  el("title", {}, r.instructionMass.map((m) => `layer ${m.layer}: base ${m.base.toFixed(3)}, Excitor ${m.tuned.toFixed(3)}`).join("; "));
  el("text", { x: 60, y: 14, class: "legend s3" }, "base");
  el("text", { x: 110, y: 14, class: "legend s0" }, "Excitor");
  r.instructionMass.forEach((m, i) => {
    const y = 24 + i * rowH;
    const w = (v: number) => ((W - 120) * v) / max;
    el("text", { x: 4, y: y + 13, class: "tick" }, `layer ${m.layer}`);
    el("rect", { x: 60, y, width: w(m.base), height: 8, class: "bar s3" });
    el("rect", { x: 60, y: y + 9, width: w(m.tuned), height: 8, class: "bar s0" });
    el("text", { x: 64 + Math.max(w(m.base), w(m.tuned)), y: y + 13, class: "tick" }, `${fmt(m.base)} → ${fmt(m.tuned)}`);
  });
  massChart.replaceChildren(svg);
}

function drawGates(r: AttentionReport): void {
  const table = h("table", "gate-table");
  const hr = h("tr");
  hr.append(h("th", undefined, "layer"), ...Array.from({ length: r.numHeads }, (_, i) => h("th", undefined, `head ${i}`)));
  table.append(hr);
  for (const l of r.layers) {
    const tr = h("tr");
    tr.append(h("th", undefined, String(l.layer)), ...(l.gates ? l.gates.map((g) => h("td", undefined, g.toFixed(4))) : [Object.assign(h("td", "muted", "not adapted"), { colSpan: r.numHeads })]));
    table.append(tr);
  }
  gates.replaceChildren(table);
}

function exportAs(format: "png" | "svg"): void {
  const d = data();
  if (!d) return;
  const data_ = format === "png" ? canvas.toDataURL("image/png") : heatmapSvg(d, themeColors(), caption());
  host.post({ type: "export", format, data: data_ });
}

results.hidden = true;
host.post({ type: "ready" });
