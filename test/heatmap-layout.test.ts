/**
 * The attention map's layout rules and its export, in plain Node (the module is DOM-free): the
 * map fits the panel's width, labels go on the axes only when the cells are big enough for them,
 * hiding the template leaves the user's tokens, and the exported SVG of a 150-token map carries
 * the title, every token's label, the span legend and the colour scale, and no cursor.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { SpanKind, TokenSpan } from "../engine/analysis/spans";
import {
  cellAt,
  EXPORT_CELL,
  fitCell,
  heatmapScene,
  kindsOf,
  LABEL_MIN_CELL,
  layoutFor,
  MAX_SIDE,
  sceneToSvg,
  tokenLabel,
  tunedName,
  colourScale,
  visibleTokens,
  zoomCell,
  type HeatmapData,
  type Theme,
} from "../webview/heatmap-layout";

const theme: Theme = {
  background: [30, 30, 30],
  foreground: [220, 220, 220],
  muted: [150, 150, 150],
  positive: [55, 148, 255],
  negative: [241, 76, 76],
  spans: { template: [150, 150, 150], instruction: [204, 167, 0], input: [137, 209, 133], response: [183, 128, 255] },
};

/** A 150-token sequence: BOS + 30 template, 20 instruction, 6 template, 80 input, 4 template, 9 response. */
function sequence(): { tokens: string[]; spans: TokenSpan[] } {
  const parts: [SpanKind, number][] = [["template", 31], ["instruction", 20], ["template", 6], ["input", 80], ["template", 4], ["response", 9]];
  const spans: TokenSpan[] = [];
  let at = 0;
  for (const [kind, n] of parts) {
    spans.push({ kind, start: at, end: at + n });
    at += n;
  }
  const tokens = Array.from({ length: at }, (_, i) => (i === 0 ? "<s>" : `w${i}`));
  return { tokens, spans };
}

function data(hideTemplate: boolean): HeatmapData {
  const { tokens, spans } = sequence();
  const M = tokens.length;
  // Causal rows that sum to 1, as attention does.
  const values = Array.from({ length: M }, (_, q) => Array.from({ length: M }, (_, k) => (k <= q ? 1 / (q + 1) : 0)));
  const kinds = kindsOf(spans, M);
  return { tokens, values, mode: "tuned", kinds, visible: visibleTokens(kinds, hideTemplate) };
}

test("fit: the map fits the panel's width, with axis labels only when cells are big enough for them", () => {
  for (const n of [5, 30, 80, 150, 256])
    for (const width of [300, 700, 1000, 1600]) {
      const L = layoutFor(n, fitCell(n, width));
      assert.ok(L.size <= width || L.cell === 2, `${n} tokens in ${width} px: map is ${L.size} px`);
      assert.equal(L.labels, L.cell >= LABEL_MIN_CELL);
    }
  assert.equal(layoutFor(150, fitCell(150, 1000)).labels, false, "150 tokens in 1000 px: no room for axis labels (the token strip has them)");
  assert.equal(layoutFor(30, fitCell(30, 1000)).labels, true, "30 tokens in 1000 px: labels on the axes");
});

test("zoom: steps grow and shrink the cells, within limits that keep the canvas drawable", () => {
  let cell = fitCell(150, 1000);
  const seen = [cell];
  for (let i = 0; i < 10; i++) seen.push((cell = zoomCell(150, cell, 1)));
  assert.ok(seen[1] > seen[0], "zoom in grows the cells");
  assert.ok(layoutFor(150, seen[2]).labels, "two steps in from fit, 150 tokens get axis labels");
  assert.ok(layoutFor(150, cell).size <= MAX_SIDE + 100, "zooming in stops at the size limit");
  assert.ok(zoomCell(150, cell, -1) < cell, "zoom out shrinks the cells");
  assert.equal(zoomCell(150, 2, -1), 2, "not below the smallest cell");
});

test("a point on the map names the cell under it", () => {
  const L = layoutFor(150, 13);
  for (const [r, c] of [[0, 0], [17, 149], [149, 3], [75, 75]]) assert.deepEqual(cellAt(L, L.margin + (c + 0.5) * L.cell, L.margin + (r + 0.5) * L.cell), [r, c]);
  assert.equal(cellAt(L, L.margin - 2, L.margin + 5), undefined, "the label margin is no cell");
  assert.equal(cellAt(L, L.size + 1, L.margin + 5), undefined);
});

test("hiding the template leaves instruction, input and response, in order", () => {
  const d = data(true);
  assert.equal(d.visible.length, 150 - 31 - 6 - 4);
  assert.ok(d.visible.every((i) => d.kinds[i] !== "template"));
  assert.deepEqual(d.visible.slice(0, 2), [31, 32]);
  assert.equal(data(false).visible.length, 150);
  // A prompt that is all template (no user text, no response) still shows something.
  assert.deepEqual(visibleTokens(["template", "template"], true), [0, 1]);
});

test("token labels show line breaks and blanks, and stay short", () => {
  assert.equal(tokenLabel("\n"), "⏎");
  assert.equal(tokenLabel(" "), "␣");
  assert.equal(tokenLabel(""), "∅");
  assert.equal(tokenLabel(" Sue"), "Sue");
  assert.equal(tokenLabel("abcdefghijklmnopq"), "abcdefghijk…");
});

test("the exported SVG of a 150-token map carries the title, every token's label, the spans and the colour scale, and no cursor", () => {
  for (const hide of [false, true]) {
    const d = data(hide);
    const n = d.visible.length;
    const title = "Layer 3, mean over heads, with the Excitor adapter";
    const svg = sceneToSvg(heatmapScene(d, theme, { cell: EXPORT_CELL, header: { title, subtitle: "Rows: query token" }, colourScale: true }), title);
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.ok(svg.includes(`<title>${title}</title>`) && svg.includes(`>${title}</text>`), "the title is written on the picture");
    const labels = [...svg.matchAll(/<text class="label"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    assert.equal(labels.length, 2 * n, "a label on each axis for every token drawn");
    for (const i of d.visible) assert.ok(labels.includes(tokenLabel(d.tokens[i]).replace("<", "&lt;").replace(">", "&gt;")), `token ${i} is labelled`);
    assert.equal(labels.includes("&lt;s&gt;"), !hide, "BOS (template) is labelled only when the template is shown");
    assert.equal((svg.match(/<rect class="cell"/g) ?? []).length, n * n);
    for (const legend of ["Instruction (20)", "Input (80)", "Response (9)"]) assert.ok(svg.includes(legend), legend);
    assert.equal(svg.includes("Template (41)"), !hide);
    assert.ok(svg.includes("Attention (share of the query token's attention)"), "the colour scale's caption");
    for (const tick of [">0 %<", ">5 %<", ">25 %<", ">100 %<"]) assert.ok(svg.includes(tick), `colour scale tick ${tick}`);
    assert.ok(!/<rect[^>]*stroke/.test(svg), "no outlined box (the panel's cursor) in the export");
    // Labels have room: the picture is wide enough for the grid beside the row labels.
    const width = Number(/width="(\d+)"/.exec(svg)![1]);
    assert.ok(width >= n * EXPORT_CELL + 88);
  }
});

test("on screen at fit, a 150-token map has span bars but no axis labels", () => {
  const d = data(true);
  const s = heatmapScene(d, theme, { cell: fitCell(d.visible.length, 1000) });
  assert.equal(s.prims.filter((p) => p.t === "text").length, 0);
  const bars = s.prims.filter((p) => p.t === "rect" && p.role === "span");
  assert.equal(bars.length, 2 * 3, "instruction, input, response: one bar each on each axis");
  assert.ok(s.width <= 1000 + 8);
});

test("a LoRA adapter's report (adapted layers without gates) is named LoRA in the difference caption; Excitor's keeps its name", () => {
  const layer = (adapted: boolean, gates: number[] | null) => ({ adapted, gates });
  assert.equal(tunedName([layer(false, null), layer(true, null), layer(true, null)]), "LoRA");
  assert.equal(tunedName([layer(false, null), layer(true, [0.1, 0.2])]), "Excitor");
  assert.equal(tunedName([layer(false, null), layer(false, null)]), "Excitor", "no adapter: nothing to name, the default label");
  const captionOf = (tuned?: string) => colourScale("diff", 0.1, theme, 0, 0, tuned).prims.flatMap((p) => (p.t === "text" && p.role === "caption" && p.text.includes("base") ? [p.text] : []));
  assert.deepEqual(captionOf("LoRA"), ["LoRA − base (share of the query token's attention)"]);
  assert.deepEqual(captionOf(), ["Excitor − base (share of the query token's attention)"]);
});
