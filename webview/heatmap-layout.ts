/**
 * The attention map as a scene: coloured cells, span bars, token labels, span boundaries and,
 * for export, a title, a legend of the spans and a colour scale. DOM-free (no document, no
 * canvas), so the same scene is drawn on the panel's canvas, written as SVG text and drawn into
 * the PNG, and its layout rules are unit-tested in plain Node. The cursor and highlights are
 * never part of a scene: the panel draws them on top, so an export cannot carry them.
 */
import type { SpanKind, TokenSpan } from "../engine/analysis/spans";

export type Mode = "base" | "tuned" | "diff";
export type RGB = [number, number, number];

export interface Theme {
  background: RGB;
  foreground: RGB;
  /** Secondary text: template tokens' labels, captions. */
  muted: RGB;
  positive: RGB;
  negative: RGB;
  spans: Record<SpanKind, RGB>;
}

export interface HeatmapData {
  tokens: string[];
  /** Row q, column k: attention of query token q on key token k; [M][M], all tokens. */
  values: number[][];
  mode: Mode;
  /** Per token: which part of the sequence it is. */
  kinds: SpanKind[];
  /** The tokens drawn, in order (all of them, or all but the template's). */
  visible: number[];
  /** What tuned the model, as captions name it (default "Excitor"). */
  tuned?: string;
}

/**
 * What tuned the model of an attention report, from its layers: Excitor layers carry gates, the
 * layers a LoRA adapter changes carry none (the engine sends gates: null for them).
 */
export function tunedName(layers: readonly { adapted: boolean; gates: number[] | null }[]): "Excitor" | "LoRA" {
  return layers.some((l) => l.adapted) && layers.every((l) => !l.adapted || l.gates === null) ? "LoRA" : "Excitor";
}

export const SPAN_NAMES: Record<SpanKind, string> = { template: "Template", instruction: "Instruction", input: "Input", response: "Response" };

/** Per token, the kind of the span it is in. */
export function kindsOf(spans: TokenSpan[], length: number): SpanKind[] {
  const kinds = new Array<SpanKind>(length).fill("template");
  for (const s of spans) for (let i = s.start; i < Math.min(s.end, length); i++) kinds[i] = s.kind;
  return kinds;
}

/** The tokens to draw: with `hideTemplate`, the template's are left out (unless nothing else is left). */
export function visibleTokens(kinds: SpanKind[], hideTemplate: boolean): number[] {
  const all = kinds.map((_, i) => i);
  if (!hideTemplate) return all;
  const shown = all.filter((i) => kinds[i] !== "template");
  return shown.length > 0 ? shown : all;
}

/** A token as a short label: line breaks and tabs made visible, a blank token shown as ␣, long ones cut. */
export function tokenLabel(tok: string, max = 12): string {
  let s = tok.replace(/\n/g, "⏎").replace(/\t/g, "⇥");
  s = s.trim() === "" ? (s === "" ? "∅" : s.replace(/ /g, "␣")) : s.trim();
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
}

// ---------------------------------------------------------------- layout

/** Below this cell size, axis labels do not fit (the panel shows the token strip instead). */
export const LABEL_MIN_CELL = 10;
export const MIN_CELL = 2;
/** The largest cell size, and the largest map side in CSS pixels (canvases have a size limit). */
export const MAX_CELL = 40;
export const MAX_SIDE = 4000;
/** Cell size of an export: every label readable. */
export const EXPORT_CELL = 12;
const LABEL_ROOM = 88;
const BAR = 6;
const GAP = 3;

export interface Layout {
  /** Tokens per side. */
  n: number;
  cell: number;
  /** Whether the axes carry token labels. */
  labels: boolean;
  /** Room left of and above the grid: labels (when shown) and the span bars. */
  margin: number;
  /** Side of the map in CSS pixels, margin included. */
  size: number;
}

export function layoutFor(n: number, cell: number): Layout {
  const c = Math.max(MIN_CELL, Math.min(maxCell(n), Math.round(cell)));
  const labels = c >= LABEL_MIN_CELL;
  const margin = (labels ? LABEL_ROOM : 0) + BAR + GAP + 1;
  return { n, cell: c, labels, margin, size: margin + c * n };
}

function maxCell(n: number): number {
  return Math.max(MIN_CELL, Math.min(MAX_CELL, Math.floor((MAX_SIDE - LABEL_ROOM) / Math.max(1, n))));
}

/**
 * The cell size that fits `n` tokens in `width` pixels: with axis labels when cells that fit
 * beside the labels are big enough for them, else without labels (the token strip carries them).
 * At most 28 px, so a short sequence does not fill a wide panel with giant cells.
 */
export function fitCell(n: number, width: number): number {
  const withLabels = Math.floor((width - layoutFor(n, LABEL_MIN_CELL).margin) / Math.max(1, n));
  if (withLabels >= LABEL_MIN_CELL) return Math.min(28, withLabels);
  return Math.max(MIN_CELL, Math.min(28, Math.floor((width - layoutFor(n, MIN_CELL).margin) / Math.max(1, n))));
}

/** One zoom step in (`dir` 1) or out (-1) from `cell`. */
export function zoomCell(n: number, cell: number, dir: 1 | -1): number {
  const next = dir > 0 ? Math.max(cell + 1, Math.round(cell * 1.5)) : Math.min(cell - 1, Math.round(cell / 1.5));
  return Math.max(MIN_CELL, Math.min(maxCell(n), next));
}

/** The visible row and column (positions in `visible`) under a point of the map, or undefined. */
export function cellAt(L: Layout, x: number, y: number): [number, number] | undefined {
  const col = Math.floor((x - L.margin) / L.cell);
  const row = Math.floor((y - L.margin) / L.cell);
  return row >= 0 && col >= 0 && row < L.n && col < L.n ? [row, col] : undefined;
}

// ---------------------------------------------------------------- colours

const mix = (a: RGB, b: RGB, t: number): RGB => [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t)) as RGB;
export const css = (c: RGB, alpha = 1) => (alpha === 1 ? `rgb(${c[0]},${c[1]},${c[2]})` : `rgba(${c[0]},${c[1]},${c[2]},${alpha})`);

/** The largest |value| among the drawn cells, which a difference map scales to full colour. */
export function scaleOf(d: HeatmapData): number {
  if (d.mode !== "diff") return 1;
  let m = 0;
  for (const q of d.visible) for (const k of d.visible) m = Math.max(m, Math.abs(d.values[q][k]));
  return m || 1;
}

export function cellColor(v: number, mode: Mode, scale: number, t: Theme): string {
  if (mode === "diff") return css(mix(t.background, v < 0 ? t.negative : t.positive, Math.min(1, Math.abs(v) / scale)));
  // sqrt: attention is mostly small numbers; this keeps the weak links visible.
  return css(mix(t.background, t.positive, Math.sqrt(Math.max(0, Math.min(1, v)))));
}

export const percent = (v: number, digits = 1) => `${(100 * v).toFixed(digits)} %`;

// ---------------------------------------------------------------- scene

export type Prim =
  | { t: "rect"; x: number; y: number; w: number; h: number; fill: string; role: "cell" | "span" | "scale" | "swatch"; title?: string }
  | { t: "text"; x: number; y: number; text: string; size: number; fill: string; anchor: "start" | "end" | "middle"; rotate?: boolean; bold?: boolean; role: "label" | "title" | "caption" }
  | { t: "line"; x1: number; y1: number; x2: number; y2: number; stroke: string; width: number; role: "boundary" | "tick" };

export interface Scene {
  width: number;
  height: number;
  background: string;
  /** Where the grid's top-left corner is. */
  origin: [number, number];
  layout: Layout;
  prims: Prim[];
}

export interface SceneOptions {
  cell: number;
  /** Export only: a title and subtitle above, the span legend, and the colour scale below. */
  header?: { title: string; subtitle: string };
  colourScale?: boolean;
}

/** Rough width of text in the scene's monospace font, for sizing the picture around it. */
const textWidth = (s: string, size: number) => s.length * size * 0.62;

export function heatmapScene(d: HeatmapData, theme: Theme, o: SceneOptions): Scene {
  const vis = d.visible;
  const L = layoutFor(vis.length, o.cell);
  const prims: Prim[] = [];
  const fg = css(theme.foreground);
  const muted = css(theme.muted);
  let top = 0;
  let width = L.size + 8;
  if (o.header) {
    prims.push({ t: "text", x: 4, y: 18, text: o.header.title, size: 14, bold: true, fill: fg, anchor: "start", role: "title" });
    prims.push({ t: "text", x: 4, y: 36, text: o.header.subtitle, size: 11, fill: muted, anchor: "start", role: "caption" });
    let x = 4;
    for (const kind of ["template", "instruction", "input", "response"] as SpanKind[]) {
      const count = vis.filter((i) => d.kinds[i] === kind).length;
      if (count === 0) continue;
      const label = `${SPAN_NAMES[kind]} (${count})`;
      prims.push({ t: "rect", x, y: 46, w: 12, h: 10, fill: css(theme.spans[kind]), role: "swatch" });
      prims.push({ t: "text", x: x + 16, y: 51, text: label, size: 11, fill: fg, anchor: "start", role: "caption" });
      x += 16 + textWidth(label, 11) + 14;
    }
    width = Math.max(width, textWidth(o.header.title, 14) + 8, textWidth(o.header.subtitle, 11) + 8, x);
    top = 66;
  }
  const ox = L.margin;
  const oy = top + L.margin;
  const scale = scaleOf(d);
  vis.forEach((q, r) =>
    vis.forEach((k, c) => {
      const v = d.values[q][k];
      prims.push({ t: "rect", x: ox + c * L.cell, y: oy + r * L.cell, w: L.cell, h: L.cell, fill: cellColor(v, d.mode, scale, theme), role: "cell", title: `${tokenLabel(d.tokens[q], 24)} → ${tokenLabel(d.tokens[k], 24)}: ${percent(v, 2)}` });
    }),
  );
  // Span bars along both axes, one rectangle per run of one kind.
  const n = vis.length;
  for (let a = 0; a < n; ) {
    let b = a + 1;
    while (b < n && d.kinds[vis[b]] === d.kinds[vis[a]]) b++;
    const fill = css(theme.spans[d.kinds[vis[a]]]);
    prims.push({ t: "rect", x: ox - BAR - 1, y: oy + a * L.cell, w: BAR, h: (b - a) * L.cell, fill, role: "span" });
    prims.push({ t: "rect", x: ox + a * L.cell, y: oy - BAR - 1, w: (b - a) * L.cell, h: BAR, fill, role: "span" });
    if (a > 0) {
      const at = a * L.cell;
      const stroke = css(theme.foreground, 0.55);
      prims.push({ t: "line", x1: ox, y1: oy + at, x2: ox + n * L.cell, y2: oy + at, stroke, width: 1, role: "boundary" });
      prims.push({ t: "line", x1: ox + at, y1: oy, x2: ox + at, y2: oy + n * L.cell, stroke, width: 1, role: "boundary" });
    }
    a = b;
  }
  if (L.labels) {
    const size = Math.min(11, L.cell - 1);
    vis.forEach((i, p) => {
      const text = tokenLabel(d.tokens[i]);
      const fill = d.kinds[i] === "template" ? muted : fg;
      const mid = (p + 0.5) * L.cell;
      prims.push({ t: "text", x: ox - BAR - GAP - 2, y: oy + mid, text, size, fill, anchor: "end", role: "label" });
      prims.push({ t: "text", x: ox + mid, y: oy - BAR - GAP - 2, text, size, fill, anchor: "start", rotate: true, role: "label" });
    });
  }
  let height = oy + n * L.cell + 6;
  if (o.colourScale) {
    const y = height + 8;
    const { prims: sp, width: sw } = colourScale(d.mode, scale, theme, 4, y, d.tuned);
    prims.push(...sp);
    width = Math.max(width, sw + 8);
    height = y + 40;
  }
  return { width: Math.ceil(width), height: Math.ceil(height), background: css(theme.background), origin: [ox, oy], layout: L, prims };
}

/**
 * The colour scale: a bar of the map's colours with value ticks. Attention maps use sqrt
 * shading, so ticks sit at the square root of their values along the bar.
 */
export function colourScale(mode: Mode, scale: number, theme: Theme, x: number, y: number, tuned = "Excitor"): { prims: Prim[]; width: number } {
  const W = 240;
  const H = 10;
  const steps = 60;
  const fg = css(theme.foreground);
  const prims: Prim[] = [];
  const caption = mode === "diff" ? `${tuned} − base (share of the query token's attention)` : "Attention (share of the query token's attention)";
  prims.push({ t: "text", x, y: y + 8, text: caption, size: 11, fill: fg, anchor: "start", role: "caption" });
  const bx = x;
  const by = y + 14;
  for (let s = 0; s < steps; s++) {
    const t = (s + 0.5) / steps;
    const v = mode === "diff" ? (2 * t - 1) * scale : t * t;
    prims.push({ t: "rect", x: bx + (s * W) / steps, y: by, w: W / steps + 0.5, h: H, fill: cellColor(v, mode, scale, theme), role: "scale" });
  }
  const ticks: [number, string][] =
    mode === "diff"
      ? [-1, -0.5, 0, 0.5, 1].map((f) => [(f + 1) / 2, `${f > 0 ? "+" : f < 0 ? "−" : ""}${percent(Math.abs(f * scale), 1)}`])
      : [0, 0.05, 0.25, 0.5, 1].map((v) => [Math.sqrt(v), percent(v, 0)]);
  for (const [at, label] of ticks) {
    const tx = bx + at * W;
    prims.push({ t: "line", x1: tx, y1: by + H, x2: tx, y2: by + H + 3, stroke: fg, width: 1, role: "tick" });
    prims.push({ t: "text", x: tx, y: by + H + 13, text: label, size: 10, fill: fg, anchor: at === 0 ? "start" : at === 1 ? "end" : "middle", role: "caption" });
  }
  return { prims, width: Math.max(W, textWidth(caption, 11)) + x };
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const num = (v: number) => String(Math.round(v * 100) / 100);

/** A scene as standalone SVG text, with `title` as its accessible title. */
export function sceneToSvg(s: Scene, title: string): string {
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${s.width}" height="${s.height}" viewBox="0 0 ${s.width} ${s.height}" font-family="monospace">`,
    `<title>${esc(title)}</title>`,
    `<rect width="100%" height="100%" fill="${s.background}"/>`,
  ];
  for (const p of s.prims) {
    if (p.t === "rect") {
      const t = p.title ? `<title>${esc(p.title)}</title>` : "";
      out.push(`<rect class="${p.role}" x="${num(p.x)}" y="${num(p.y)}" width="${num(p.w)}" height="${num(p.h)}" fill="${p.fill}"${t ? `>${t}</rect>` : "/>"}`);
    } else if (p.t === "line") {
      out.push(`<line class="${p.role}" x1="${num(p.x1)}" y1="${num(p.y1)}" x2="${num(p.x2)}" y2="${num(p.y2)}" stroke="${p.stroke}" stroke-width="${p.width}"/>`);
    } else {
      const at = p.rotate ? `transform="translate(${num(p.x)},${num(p.y)}) rotate(-90)"` : `x="${num(p.x)}" y="${num(p.y)}"`;
      const anchor = p.anchor === "start" ? "" : ` text-anchor="${p.anchor}"`;
      out.push(`<text class="${p.role}" ${at} font-size="${p.size}"${p.bold ? ' font-weight="bold"' : ""}${anchor} dominant-baseline="middle" fill="${p.fill}" xml:space="preserve">${esc(p.text)}</text>`);
    }
  }
  out.push("</svg>");
  return out.join("\n");
}
