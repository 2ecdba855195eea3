/**
 * The attention panel: prompt form, layer / head / mode selectors, the heatmap (fit to the
 * panel's width, zoom and scroll, template words hidden or dimmed, span bars for instruction,
 * input and response), token labels on the axes or in a focusable token strip, a readout that
 * stays in view, the per-layer share of the response's attention on the instruction and input
 * (base vs tuned), the gates, and PNG / SVG export of a clean picture. With a multimodal adapter
 * and an image, where the answer looks in the picture (image-attention.ts).
 */
import type { AttentionReport } from "../engine/analysis/attention";
import type { SpanKind } from "../engine/analysis/spans";
import type { AttentionToHost, AttentionToWebview, AttentionView } from "../extension/messages";
import { drawCursor, drawScene, drawTokenCross, paint, themeColors } from "./heatmap";
import {
  cellAt,
  colourScale,
  EXPORT_CELL,
  fitCell,
  heatmapScene,
  tunedName,
  kindsOf,
  percent,
  scaleOf,
  sceneToSvg,
  SPAN_NAMES,
  tokenLabel,
  visibleTokens,
  zoomCell,
  type HeatmapData,
  type Mode,
  type Scene,
  type Theme,
} from "./heatmap-layout";
import { imageAttentionSection } from "./image-attention";
import { button, checkbox, dropdown, h, progressRing, radioGroup, row, textArea, textField } from "./ui";
import { connect } from "./vscode-api";

interface Selection {
  layer: number;
  head: number; // -1 = mean over heads
  mode: Mode;
  hideTemplate: boolean;
  /** Cell size in pixels; null = fit the panel's width. */
  zoom: number | null;
}

const host = connect<AttentionToHost, AttentionToWebview, Selection>((m) => m.type === "view" && show(m.view));
const sel: Selection = { layer: -1, head: -1, mode: "tuned", hideTemplate: true, zoom: null, ...host.getState() };
let view: AttentionView | undefined;
let scene: Scene | undefined;
/** What tuned the model shown, as labels name it: "Excitor", or "LoRA" (its adapted layers have no gates). */
let tuned = "Excitor";
/** The theme's colours, read again at each full redraw (a theme switch triggers one). */
let theme: Theme | undefined;
/** The keyboard cursor: [query token, key token], indices into the report's tokens. */
let cursor: [number, number] = [0, 0];
/** The token focused or hovered in the strip, whose row and column are outlined. */
let crossed: number | undefined;

const app = document.getElementById("app")!;
const who = h("p", "muted");
const prompt = textField("Instruction", { id: "att-prompt", size: 50 });
const input = textArea("Input (Alpaca context, optional)", { id: "att-input", rows: 2 });
const response = textArea("Response (empty: the tuned model answers)", { id: "att-response", rows: 2 });
const analyze = button("Analyze", () => host.post({ type: "analyze", prompt: prompt.value, input: input.value, response: response.value }), { id: "analyze" });
const ring = progressRing();
const error = h("p", "error");
/** The chat's image the prompt is about, with a × to analyse without it. */
const imageLine = h("div", "att-image");
imageLine.id = "att-image";
const imageName = h("span");
const dropImage = h("button", "remove-image", "×");
dropImage.type = "button";
dropImage.title = "Analyse without the image";
dropImage.setAttribute("aria-label", dropImage.title);
dropImage.addEventListener("click", () => host.post({ type: "dropImage" }));
imageLine.append(imageName, dropImage);
const imageSection = imageAttentionSection();
const layerPick = dropdown("Layer", [], { id: "layer", onChange: (v) => update({ layer: Number(v) }) });
const headPick = dropdown("Head", [], { id: "head", onChange: (v) => update({ head: Number(v) }) });
const modePick = radioGroup("Show", [["base", "Base"], ["tuned", "Excitor"], ["diff", "Difference (Excitor − base)"]], sel.mode, (v) => update({ mode: v as Mode }), "mode");
const hideTemplate = checkbox("Hide template text", { checked: sel.hideTemplate, id: "hide-template", onChange: (v) => update({ hideTemplate: v }) });
hideTemplate.el.title = "The prompt format's own words (“Below is an instruction…”, “### Response:”) and BOS";
const zoomOut = button("−", () => zoom(-1), { secondary: true, id: "zoom-out", title: "Zoom out" });
const zoomFit = button("Fit", () => update({ zoom: null }), { secondary: true, id: "zoom-fit", title: "Fit the map to the panel's width" });
const zoomIn = button("+", () => zoom(1), { secondary: true, id: "zoom-in", title: "Zoom in" });
const zoomInfo = h("span", "muted zoom-info");
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
const spansLegend = h("div", "spans-legend");
spansLegend.id = "spans-legend";
const scaleCanvas = h("canvas", "colour-scale");
scaleCanvas.id = "colour-scale";
scaleCanvas.setAttribute("role", "img");
const strip = h("div", "token-strip");
strip.id = "token-strip";
strip.setAttribute("role", "listbox");
strip.setAttribute("aria-label", "Tokens: arrow keys move between them; each shows its row and column on the map");
const stripHint = h("p", "muted", "The labels do not fit the axes at this zoom: every token is listed here. Hover or focus one (arrow keys move) to outline its row and column and read it out; zoom in to put the labels on the axes.");
const stripBox = h("div", "strip-box");
stripBox.append(stripHint, strip);
const massExplain = h("p", "muted", "Share of the response's attention that goes to the instruction and input, per layer: mean over heads and response tokens; template words are not counted.");
const massNote = h("p", "note");
massNote.id = "mass-note";
const massChart = h("div", "mass");
massChart.id = "mass";
const gatesHead = h("h3", undefined, "Gates");
const gates = h("div", "gates");
const results = h("div", "results");
const mapWrap = h("div", "map-wrap");
mapWrap.id = "map-wrap";
mapWrap.append(canvas);
const controls = row(layerPick.el, headPick.el, modePick.el, hideTemplate.el);
const zoomRow = row(zoomOut, zoomFit, zoomIn, zoomInfo, h("span", "spacer"), exportPng, exportSvg);
results.append(controls, zoomRow, legend, spansLegend, tip, mapWrap, scaleCanvas, stripBox, imageSection.el, h("h3", undefined, "Attention on the instruction and input, per layer"), massExplain, massNote, massChart, gatesHead, gates);
const form = h("div", "form");
form.append(prompt.el, input.el, response.el, imageLine, row(analyze, ring));
app.append(h("h2", undefined, "Attention"), who, form, error, results);

function update(s: Partial<Selection>): void {
  Object.assign(sel, s);
  host.setState(sel);
  redraw();
}

function show(v: AttentionView): void {
  view = v;
  who.textContent = `Model: ${v.modelLabel} · adapter: ${v.adapterLabel}`;
  if (document.activeElement !== prompt.el) prompt.value = v.prompt;
  input.value = v.input;
  response.value = v.response;
  response.el.textContent = `Response (empty: the ${v.hasAdapter ? "tuned" : "base"} model answers)`;
  imageLine.hidden = v.image === undefined;
  imageName.textContent = v.image ? `About the image ${v.image} (from the chat)` : "";
  analyze.disabled = v.busy;
  ring.hidden = !v.busy;
  error.textContent = v.error ? `Could not compute attention: ${v.error}` : "";
  document.body.dataset.busy = String(v.busy);
  results.hidden = !v.report;
  const r = v.report;
  memo.clear();
  if (!r) return;
  const L = r.layers.length;
  if (sel.layer < 0 || sel.layer >= L) sel.layer = r.layers.findLast((l) => l.adapted)?.layer ?? L - 1;
  if (sel.head >= r.numHeads) sel.head = -1;
  tuned = tunedName(r.layers);
  // The mode radios name the method: "LoRA" and "Difference (LoRA − base)" for a LoRA adapter.
  for (const radio of modePick.el.querySelectorAll("vscode-radio")) {
    const v = radio.getAttribute("value");
    if (v === "tuned") radio.textContent = tuned;
    if (v === "diff") radio.textContent = `Difference (${tuned} − base)`;
  }
  layerPick.setOptions(r.layers.map((l) => [String(l.layer), `${l.layer}${l.adapted ? " (adapted)" : ""}`]), String(sel.layer));
  headPick.setOptions([["-1", "mean over heads"], ...Array.from({ length: r.numHeads }, (_, i) => [String(i), `head ${i}`] as [string, string])], String(sel.head));
  // Without an adapter there is only the base model: no tuned map and no difference to show.
  modePick.el.hidden = !v.hasAdapter;
  // LoRA changes weights, not gates: its adapted layers have none to show.
  gatesHead.hidden = gates.hidden = !v.hasAdapter || !r.layers.some((l) => l.gates !== null);
  const first = (kind: SpanKind) => r.spans.find((s) => s.kind === kind)?.start;
  cursor = [first("response") ?? 0, first("instruction") ?? first("input") ?? 0];
  crossed = undefined;
  buildStrip(r);
  redraw();
  imageSection.show(r.image, r.tokens.slice(r.response[0], r.response[1]), tuned);
  drawMass(r, v.hasAdapter);
  drawGates(r);
}

function mode(): Mode {
  return view?.hasAdapter ? sel.mode : "base";
}

// ---------------------------------------------------------------- the map

const memo = new Map<string, number[][]>();

/** Layer `layer`'s attention for one head or the mean over heads: base, tuned, or their difference. */
function matrix(r: AttentionReport, layer: number, head: number, m: Mode): number[][] {
  const key = `${layer}/${head}/${m}`;
  const hit = memo.get(key);
  if (hit) return hit;
  const l = r.layers[layer];
  const pick = (p: number[][][]) => (head >= 0 ? p[head] : p[0].map((line, q) => line.map((_, k) => p.reduce((s, hp) => s + hp[q][k], 0) / p.length)));
  let out: number[][];
  if (m === "base") out = pick(l.base);
  else if (m === "tuned") out = pick(l.tuned);
  else {
    const base = matrix(r, layer, head, "base");
    out = matrix(r, layer, head, "tuned").map((line, q) => line.map((v, k) => v - base[q][k]));
  }
  memo.set(key, out);
  return out;
}

function data(): HeatmapData | undefined {
  const r = view?.report;
  if (!r) return undefined;
  const kinds = kindsOf(r.spans, r.tokens.length);
  return { tokens: r.tokens, values: matrix(r, sel.layer, sel.head, mode()), mode: mode(), kinds, visible: visibleTokens(kinds, sel.hideTemplate), tuned };
}

function caption(): string {
  const m = mode();
  const what = m === "base" ? (view?.hasAdapter ? "base model" : "base model (no adapter)") : m === "tuned" ? `with the ${tuned} adapter` : `difference, ${tuned} − base`;
  return `Layer ${sel.layer}, ${sel.head < 0 ? "mean over heads" : `head ${sel.head}`}, ${what}`;
}

function templateNote(d: HeatmapData): string {
  const n = d.kinds.filter((k) => k === "template").length;
  if (n === 0) return "";
  return d.visible.length < d.tokens.length ? `${n} template tokens hidden` : `${n} template tokens shown, labels dimmed`;
}

/** The cell size now: the zoom the user chose, or what fits the panel's width. */
function cellSize(n: number): number {
  return sel.zoom ?? fitCell(n, Math.max(120, mapWrap.clientWidth - 2));
}

function zoom(dir: 1 | -1): void {
  const d = data();
  if (!d) return;
  update({ zoom: zoomCell(d.visible.length, scene?.layout.cell ?? cellSize(d.visible.length), dir) });
}

function redraw(): void {
  const d = data();
  const r = view?.report;
  if (!d || !r) return;
  theme = themeColors();
  scene = heatmapScene(d, theme, { cell: cellSize(d.visible.length) });
  paint(mapImage, scene);
  const n = d.visible.length;
  const L = scene.layout;
  zoomInfo.textContent = `${n} × ${n} tokens · ${L.cell} px per token${sel.zoom === null ? " (fit)" : ""}`;
  canvas.setAttribute("aria-label", `${caption()}. ${n} by ${n} tokens. Arrow keys move the cursor; plus and minus zoom.`);
  const note = templateNote(d);
  legend.textContent = `${caption()}. Rows: the token that attends (query); columns: the token attended to (key). The bars along the axes mark the parts of the sequence${note ? `; ${note}` : ""}.${d.mode === "diff" ? " Blue: more attention with the adapter; red: less." : " Brighter: more attention."}`;
  drawSpansLegend(d);
  const s = colourScale(d.mode, scaleOf(d), theme, 0, 0, tuned);
  paint(scaleCanvas, { width: s.width + 8, height: 42, background: "transparent", origin: [0, 0], layout: scene.layout, prims: s.prims });
  stripBox.hidden = L.labels;
  marks();
}

/** The map as drawn, kept so that moving the cursor only redraws the marks on top of it. */
const mapImage = document.createElement("canvas");

/** The map with the cursor and the focused token's row and column on it; the strip and the readout to match. */
function marks(): void {
  const d = data();
  if (!d || !scene || !theme) return;
  snapCursor(d);
  canvas.width = mapImage.width;
  canvas.height = mapImage.height;
  canvas.style.width = mapImage.style.width;
  canvas.style.height = mapImage.style.height;
  const g = canvas.getContext("2d")!;
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.drawImage(mapImage, 0, 0);
  const dpr = mapImage.width / scene.width;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  const pos = (i: number) => d.visible.indexOf(i);
  if (crossed !== undefined && pos(crossed) >= 0) drawTokenCross(g, scene, theme, pos(crossed));
  drawCursor(g, scene, theme, pos(cursor[0]), pos(cursor[1]));
  markStrip(d);
  describe();
}

/** A cursor on a hidden token moves to the nearest shown one. */
function snapCursor(d: HeatmapData): void {
  const near = (i: number) => (d.visible.includes(i) ? i : (d.visible.find((v) => v > i) ?? d.visible[d.visible.length - 1]));
  cursor = [near(cursor[0]), near(cursor[1])];
}

function drawSpansLegend(d: HeatmapData): void {
  const items: HTMLElement[] = [];
  for (const kind of ["instruction", "input", "response", "template"] as SpanKind[]) {
    const count = d.kinds.filter((k) => k === kind).length;
    if (count === 0) continue;
    const item = h("span", `span-item kind-${kind}`);
    item.dataset.kind = kind;
    const hidden = kind === "template" && !d.visible.some((i) => d.kinds[i] === "template");
    item.append(h("span", "swatch"), document.createTextNode(`${SPAN_NAMES[kind]} · ${count} token${count === 1 ? "" : "s"}${kind === "template" ? (hidden ? " (hidden)" : " (dimmed)") : ""}`));
    items.push(item);
  }
  spansLegend.replaceChildren(...items);
}

const kindName = (k: SpanKind) => (k === "template" ? "template" : k);

/** The readout: a cell (the cursor's, or the one under the mouse), or the token focused in the strip. */
function describe(cell: [number, number] = cursor): void {
  const r = view?.report;
  const d = data();
  if (!r || !d) return;
  if (crossed !== undefined) {
    tip.textContent = tokenReadout(r, d, crossed);
    return;
  }
  const [q, k] = cell;
  const b = matrix(r, sel.layer, sel.head, "base")[q][k];
  const both = view?.hasAdapter ? ` (base ${percent(b, 2)}, ${tuned} ${percent(matrix(r, sel.layer, sel.head, "tuned")[q][k], 2)})` : " (base model)";
  tip.textContent = `query ${q} ${JSON.stringify(r.tokens[q])} (${kindName(d.kinds[q])}) → key ${k} ${JSON.stringify(r.tokens[k])} (${kindName(d.kinds[k])}): ${d.mode === "diff" ? (d.values[q][k] >= 0 ? "+" : "") : ""}${percent(d.values[q][k], 2)} of its attention${both}`;
}

/** One token: where it is, and how much of the response's attention it gets (mean over response tokens). */
function tokenReadout(r: AttentionReport, d: HeatmapData, i: number): string {
  const rows = r.spans.filter((s) => s.kind === "response").flatMap((s) => Array.from({ length: s.end - s.start }, (_, j) => s.start + j));
  const head = `token ${i} ${JSON.stringify(r.tokens[i])} (${kindName(d.kinds[i])})`;
  if (rows.length === 0) return head;
  const mean = (m: number[][]) => rows.reduce((s, q) => s + m[q][i], 0) / rows.length;
  const b = mean(matrix(r, sel.layer, sel.head, "base"));
  const t = mean(matrix(r, sel.layer, sel.head, "tuned"));
  return `${head}: the response gives it ${view?.hasAdapter ? `base ${percent(b, 2)}, ${tuned} ${percent(t, 2)}` : percent(b, 2)} of its attention (row ${i}: what it attends to; column ${i}: what attends to it)`;
}

/** Keeps the cursor's cell in sight inside the scrolling map, and the map in the window. */
function revealCursor(): void {
  const d = data();
  if (!d || !scene) return;
  const { cell } = scene.layout;
  const [ox, oy] = scene.origin;
  const x = ox + d.visible.indexOf(cursor[1]) * cell;
  const y = oy + d.visible.indexOf(cursor[0]) * cell;
  const pad = 2 * cell;
  if (x - pad < mapWrap.scrollLeft) mapWrap.scrollLeft = Math.max(0, x - pad);
  else if (x + cell + pad > mapWrap.scrollLeft + mapWrap.clientWidth) mapWrap.scrollLeft = x + cell + pad - mapWrap.clientWidth;
  if (y - pad < mapWrap.scrollTop) mapWrap.scrollTop = Math.max(0, y - pad);
  else if (y + cell + pad > mapWrap.scrollTop + mapWrap.clientHeight) mapWrap.scrollTop = y + cell + pad - mapWrap.clientHeight;
  const box = canvas.getBoundingClientRect();
  const top = box.top + y;
  const readout = tip.getBoundingClientRect().bottom;
  if (top < readout) window.scrollBy(0, top - readout - cell);
  else if (top + cell > window.innerHeight) window.scrollBy(0, top + cell - window.innerHeight + cell);
}

function pointed(e: MouseEvent): [number, number] | undefined {
  const d = data();
  if (!scene || !d) return undefined;
  const box = canvas.getBoundingClientRect();
  const c = cellAt(scene.layout, e.clientX - box.left, e.clientY - box.top - (scene.origin[1] - scene.layout.margin));
  return c ? [d.visible[c[0]], d.visible[c[1]]] : undefined;
}

canvas.addEventListener("mousemove", (e) => {
  const c = pointed(e);
  if (c && crossed === undefined) describe(c);
});
canvas.addEventListener("mouseleave", () => describe());
canvas.addEventListener("click", (e) => {
  const c = pointed(e);
  if (c) {
    cursor = c;
    crossed = undefined;
    marks();
  }
});
canvas.addEventListener("keydown", (e) => {
  const d = data();
  if (!d) return;
  const vis = d.visible;
  const step = (i: number, by: number) => vis[Math.max(0, Math.min(vis.length - 1, vis.indexOf(i) + by))];
  const page = Math.max(1, Math.floor(mapWrap.clientHeight / (scene?.layout.cell ?? 10)) - 2);
  const moves: Record<string, () => [number, number]> = {
    ArrowUp: () => [step(cursor[0], -1), cursor[1]],
    ArrowDown: () => [step(cursor[0], 1), cursor[1]],
    ArrowLeft: () => [cursor[0], step(cursor[1], -1)],
    ArrowRight: () => [cursor[0], step(cursor[1], 1)],
    PageUp: () => [step(cursor[0], -page), cursor[1]],
    PageDown: () => [step(cursor[0], page), cursor[1]],
    Home: () => [cursor[0], vis[0]],
    End: () => [cursor[0], vis[vis.length - 1]],
  };
  if (e.key === "+" || e.key === "=") zoom(1);
  else if (e.key === "-") zoom(-1);
  else if (e.key === "0") update({ zoom: null });
  else if (moves[e.key]) {
    cursor = moves[e.key]();
    crossed = undefined;
    marks();
    revealCursor();
  } else return;
  e.preventDefault();
});
// Theme switches change the CSS variables on <body>: redraw with the new colours.
new MutationObserver(() => (redraw(), imageSection.redraw())).observe(document.body, { attributes: true, attributeFilter: ["class"] });
// A map fit to the panel follows the panel's width.
let lastWidth = 0;
new ResizeObserver(() => {
  if (sel.zoom === null && mapWrap.clientWidth !== lastWidth) {
    lastWidth = mapWrap.clientWidth;
    redraw();
  }
}).observe(mapWrap);

// ---------------------------------------------------------------- the token strip

/** One element per token, in order; one of them is in the tab order at a time (arrow keys move). */
function buildStrip(r: AttentionReport): void {
  const kinds = kindsOf(r.spans, r.tokens.length);
  strip.replaceChildren(
    ...r.tokens.map((t, i) => {
      const el = h("span", `tok kind-${kinds[i]}`, tokenLabel(t, 16));
      el.dataset.index = String(i);
      el.setAttribute("role", "option");
      el.setAttribute("aria-label", `token ${i}, ${kinds[i]}: ${JSON.stringify(t)}`);
      el.title = `${i}: ${JSON.stringify(t)} (${kinds[i]})`;
      el.tabIndex = -1;
      return el;
    }),
  );
}

/** Shows which tokens are on the map (hidden template tokens are greyed out of the tab order). */
function markStrip(d: HeatmapData): void {
  const shown = new Set(d.visible);
  const active = crossed ?? cursor[1];
  for (const el of Array.from(strip.children) as HTMLElement[]) {
    const i = Number(el.dataset.index);
    el.classList.toggle("off-map", !shown.has(i));
    el.classList.toggle("crossed", i === crossed);
    el.tabIndex = i === active ? 0 : -1;
  }
}

function tokenOf(t: EventTarget | null): number | undefined {
  const el = (t as HTMLElement | null)?.closest?.(".tok") as HTMLElement | null;
  return el ? Number(el.dataset.index) : undefined;
}

function cross(i: number | undefined): void {
  if (i === crossed) return;
  crossed = i;
  marks();
}

strip.addEventListener("mouseover", (e) => cross(tokenOf(e.target)));
strip.addEventListener("mouseleave", () => {
  if (!strip.contains(document.activeElement)) cross(undefined);
});
strip.addEventListener("focusin", (e) => cross(tokenOf(e.target)));
strip.addEventListener("focusout", (e) => {
  if (!strip.contains(e.relatedTarget as Node | null)) cross(undefined);
});
strip.addEventListener("keydown", (e) => {
  const i = tokenOf(e.target);
  const d = data();
  if (i === undefined || !d) return;
  const order = d.visible;
  const at = Math.max(0, order.indexOf(i));
  const next = e.key === "ArrowRight" || e.key === "ArrowDown" ? order[Math.min(order.length - 1, at + 1)] : e.key === "ArrowLeft" || e.key === "ArrowUp" ? order[Math.max(0, at - 1)] : e.key === "Home" ? order[0] : e.key === "End" ? order[order.length - 1] : undefined;
  if (next === undefined) return;
  e.preventDefault();
  (strip.children[next] as HTMLElement).focus();
});

// ---------------------------------------------------------------- per-layer chart and gates

/** Per layer, horizontal bars with percentages: base, and tuned when there is an adapter. */
function drawMass(r: AttentionReport, withAdapter: boolean): void {
  const rows = r.instructionAndInputMass;
  const max = Math.max(1e-9, ...rows.flatMap((m) => (withAdapter ? [m.base, m.tuned] : [m.base])));
  // Bars share one scale, up to the next 10 % above the largest value (printed beside the legend).
  const top = Math.min(1, Math.ceil(max * 10) / 10);
  massNote.hidden = withAdapter;
  massNote.textContent = withAdapter ? "" : "No adapter: only the base model is shown. Choose an adapter (Excitor: Show Attention asks which) to compare it with the tuned model.";
  const key = h("div", "mass-key");
  key.append(h("span", "mass-swatch base"), h("span", undefined, "Base model"));
  if (withAdapter) key.append(h("span", "mass-swatch tuned"), h("span", undefined, `${tuned} (tuned)`));
  key.append(h("span", "muted", `bar length: 0 to ${percent(top, 0)}`));
  const bar = (cls: "base" | "tuned", v: number, label: string) => {
    const line = h("div", `mass-bar ${cls}`);
    line.setAttribute("aria-label", `${label}: ${percent(v)}`);
    const track = h("div", "mass-track");
    const fill = h("div", "mass-fill");
    fill.style.width = `${(100 * Math.min(v, top)) / top}%`;
    track.append(fill);
    line.append(h("span", "mass-who", label), track, h("span", "mass-pct", percent(v)));
    return line;
  };
  const lines = rows.map((m) => {
    const l = r.layers[m.layer];
    const line = h("div", "mass-row");
    line.dataset.layer = String(m.layer);
    line.append(h("div", "mass-layer", `Layer ${m.layer}${l.adapted ? " · adapted" : ""}`), bar("base", m.base, "Base"));
    if (withAdapter) line.append(bar("tuned", m.tuned, tuned));
    return line;
  });
  massChart.replaceChildren(key, ...lines);
}

function drawGates(r: AttentionReport): void {
  const table = h("table", "gate-table");
  const hr = h("tr");
  hr.append(h("th", undefined, "layer"), ...Array.from({ length: r.numHeads }, (_, i) => h("th", undefined, `head ${i}`)));
  table.append(hr);
  for (const l of r.layers) {
    const tr = h("tr");
    tr.append(h("th", undefined, String(l.layer)), ...(l.gates ? l.gates.map((g) => h("td", undefined, g.toFixed(4))) : [Object.assign(h("td", "muted", l.adapted ? "adapted, no gate" : "not adapted"), { colSpan: r.numHeads })]));
    table.append(tr);
  }
  gates.replaceChildren(table);
}

// ---------------------------------------------------------------- export

/** The picture to export: every label at a readable size, title, spans legend, colour scale; no cursor. */
function exportScene(d: HeatmapData): Scene {
  const note = templateNote(d);
  const subtitle = `Rows: query token (attends); columns: key token (attended to).${note ? ` ${note[0].toUpperCase()}${note.slice(1)}.` : ""}`;
  return heatmapScene(d, themeColors(), { cell: Math.max(EXPORT_CELL, scene?.layout.cell ?? 0), header: { title: caption(), subtitle }, colourScale: true });
}

function exportAs(format: "png" | "svg"): void {
  const d = data();
  if (!d) return;
  const s = exportScene(d);
  let out: string;
  if (format === "svg") out = sceneToSvg(s, caption());
  else {
    const c = document.createElement("canvas");
    c.width = s.width;
    c.height = s.height;
    drawScene(c.getContext("2d")!, s);
    out = c.toDataURL("image/png");
  }
  host.post({ type: "export", format, data: out });
}

results.hidden = true;
host.post({ type: "ready" });
