/**
 * The token × token heatmap: drawn on a canvas for the panel, and as SVG text for export, from the
 * same cell colours. Colours are mixed from the theme's own (editor background toward a chart
 * colour), so the map reads in light, dark and high-contrast themes.
 */
export type Mode = "base" | "tuned" | "diff";

export interface HeatmapData {
  tokens: string[];
  /** Row q, column k: attention of query token q on key token k; [M][M]. */
  values: number[][];
  mode: Mode;
  /** Token ranges [start, end) of the instruction and of the response. */
  instruction: [number, number];
  response: [number, number];
}

type RGB = [number, number, number];

export interface Theme {
  background: RGB;
  foreground: RGB;
  positive: RGB;
  negative: RGB;
  mark: RGB;
}

/** Any CSS colour → RGB, by letting a canvas parse it. */
function rgbOf(css: string, fallback: RGB): RGB {
  if (!css.trim()) return fallback;
  const c = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
  if (!c) return fallback;
  c.fillStyle = `rgb(${fallback.join(",")})`;
  c.fillStyle = css;
  c.fillRect(0, 0, 1, 1);
  const d = c.getImageData(0, 0, 1, 1).data;
  return [d[0], d[1], d[2]];
}

export function themeColors(): Theme {
  const s = getComputedStyle(document.body);
  const v = (name: string) => s.getPropertyValue(name);
  const foreground = rgbOf(v("--vscode-editor-foreground"), [212, 212, 212]);
  // High-contrast themes: attention ramps from the background to the foreground, the widest contrast the theme has.
  const highContrast = document.body.classList.contains("vscode-high-contrast") || document.body.classList.contains("vscode-high-contrast-light");
  return {
    background: rgbOf(v("--vscode-editor-background"), [30, 30, 30]),
    foreground,
    positive: highContrast ? foreground : rgbOf(v("--vscode-charts-blue"), [55, 148, 255]),
    negative: rgbOf(v("--vscode-charts-red"), [241, 76, 76]),
    mark: rgbOf(v("--vscode-charts-yellow") || v("--vscode-focusBorder"), [204, 167, 0]),
  };
}

const mix = (a: RGB, b: RGB, t: number): RGB => [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t)) as RGB;
const css = (c: RGB) => `rgb(${c[0]},${c[1]},${c[2]})`;

/** The largest |value|, which a difference map scales to full colour. */
export function scaleOf(d: HeatmapData): number {
  if (d.mode !== "diff") return 1;
  let m = 0;
  for (const row of d.values) for (const v of row) m = Math.max(m, Math.abs(v));
  return m || 1;
}

export function cellColor(v: number, mode: Mode, scale: number, t: Theme): string {
  if (mode === "diff") return css(mix(t.background, v < 0 ? t.negative : t.positive, Math.min(1, Math.abs(v) / scale)));
  // sqrt: attention is mostly small numbers; this keeps the weak links visible.
  return css(mix(t.background, t.positive, Math.sqrt(Math.max(0, Math.min(1, v)))));
}

export interface Layout {
  cell: number;
  /** Room for token labels left of and above the grid. */
  margin: number;
  size: number;
}

export function layoutFor(m: number, maxSize = 720): Layout {
  const cell = Math.max(3, Math.min(22, Math.floor(maxSize / Math.max(1, m))));
  const margin = cell >= 9 ? 90 : 8;
  return { cell, margin, size: margin + cell * m };
}

const short = (tok: string) => (tok.length > 12 ? tok.slice(0, 11) + "…" : tok).replace(/\n/g, "⏎");

export function drawHeatmap(canvas: HTMLCanvasElement, d: HeatmapData, t: Theme, cursor?: [number, number]): Layout {
  const m = d.tokens.length;
  const L = layoutFor(m);
  const dpr = window.devicePixelRatio || 1;
  canvas.width = L.size * dpr;
  canvas.height = L.size * dpr;
  canvas.style.width = `${L.size}px`;
  canvas.style.height = `${L.size}px`;
  const g = canvas.getContext("2d")!;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.fillStyle = css(t.background);
  g.fillRect(0, 0, L.size, L.size);
  const scale = scaleOf(d);
  for (let q = 0; q < m; q++)
    for (let k = 0; k < m; k++) {
      g.fillStyle = cellColor(d.values[q][k], d.mode, scale, t);
      g.fillRect(L.margin + k * L.cell, L.margin + q * L.cell, L.cell, L.cell);
    }
  if (L.margin > 8) {
    g.fillStyle = css(t.foreground);
    g.font = `${Math.min(12, L.cell)}px var(--vscode-editor-font-family, monospace)`;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let i = 0; i < m; i++) g.fillText(short(d.tokens[i]), L.margin - 4, L.margin + (i + 0.5) * L.cell);
    g.save();
    g.rotate(-Math.PI / 2);
    g.textAlign = "left";
    for (let i = 0; i < m; i++) g.fillText(short(d.tokens[i]), -L.margin + 4, L.margin + (i + 0.5) * L.cell);
    g.restore();
  }
  // The instruction span: its key columns, outlined over the response rows (attention on the instruction).
  const [i0, i1] = d.instruction;
  const [r0, r1] = d.response;
  g.strokeStyle = css(t.mark);
  g.lineWidth = 2;
  g.setLineDash([4, 3]);
  if (i1 > i0) g.strokeRect(L.margin + i0 * L.cell, L.margin + i0 * L.cell, (i1 - i0) * L.cell, (Math.max(r1, i1) - i0) * L.cell);
  g.setLineDash([]);
  if (r1 > r0) {
    g.strokeStyle = css(t.foreground);
    g.lineWidth = 1;
    g.strokeRect(L.margin, L.margin + r0 * L.cell, m * L.cell, (r1 - r0) * L.cell);
  }
  if (cursor) {
    g.strokeStyle = css(t.foreground);
    g.lineWidth = 2;
    g.strokeRect(L.margin + cursor[1] * L.cell - 1, L.margin + cursor[0] * L.cell - 1, L.cell + 2, L.cell + 2);
  }
  return L;
}

/** The cell under a mouse position, or undefined. */
export function cellAt(L: Layout, m: number, x: number, y: number): [number, number] | undefined {
  const k = Math.floor((x - L.margin) / L.cell);
  const q = Math.floor((y - L.margin) / L.cell);
  return q >= 0 && k >= 0 && q < m && k < m ? [q, k] : undefined;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** The same picture as standalone SVG text (cells, labels, instruction span), with a title. */
export function heatmapSvg(d: HeatmapData, t: Theme, title: string): string {
  const m = d.tokens.length;
  const L = layoutFor(m);
  const top = 24;
  const scale = scaleOf(d);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${L.size}" height="${L.size + top}" viewBox="0 0 ${L.size} ${L.size + top}" font-family="monospace">`,
    `<title>${esc(title)}</title>`,
    `<rect width="100%" height="100%" fill="${css(t.background)}"/>`,
    `<text x="4" y="16" font-size="13" fill="${css(t.foreground)}">${esc(title)}</text>`,
    `<g transform="translate(0,${top})">`,
  ];
  for (let q = 0; q < m; q++)
    for (let k = 0; k < m; k++)
      parts.push(`<rect x="${L.margin + k * L.cell}" y="${L.margin + q * L.cell}" width="${L.cell}" height="${L.cell}" fill="${cellColor(d.values[q][k], d.mode, scale, t)}"><title>${esc(`${d.tokens[q]} → ${d.tokens[k]}: ${d.values[q][k].toFixed(4)}`)}</title></rect>`);
  if (L.margin > 8) {
    const fs = Math.min(12, L.cell);
    for (let i = 0; i < m; i++) {
      parts.push(`<text x="${L.margin - 4}" y="${L.margin + (i + 0.5) * L.cell}" font-size="${fs}" text-anchor="end" dominant-baseline="middle" fill="${css(t.foreground)}">${esc(short(d.tokens[i]))}</text>`);
      const x = L.margin + (i + 0.5) * L.cell;
      parts.push(`<text transform="translate(${x},${L.margin - 4}) rotate(-90)" font-size="${fs}" dominant-baseline="middle" fill="${css(t.foreground)}">${esc(short(d.tokens[i]))}</text>`);
    }
  }
  const [i0, i1] = d.instruction;
  if (i1 > i0)
    parts.push(`<rect x="${L.margin + i0 * L.cell}" y="${L.margin + i0 * L.cell}" width="${(i1 - i0) * L.cell}" height="${(Math.max(d.response[1], i1) - i0) * L.cell}" fill="none" stroke="${css(t.mark)}" stroke-width="2" stroke-dasharray="4 3"/>`);
  parts.push("</g></svg>");
  return parts.join("\n");
}
