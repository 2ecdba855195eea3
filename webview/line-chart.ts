/**
 * A small SVG line chart: a few series over a shared x axis, with axes, ticks and a legend.
 * Colours come from the theme (CSS classes map series to --vscode-charts-* colours), so the
 * chart reads in light, dark and high-contrast themes.
 */
export interface Series {
  name: string;
  points: [number, number][];
  /** CSS class selecting the colour: s0…s7. */
  cls: string;
  dashed?: boolean;
}

const NS = "http://www.w3.org/2000/svg";
const W = 480;
const H = 200;
const PAD = { l: 52, r: 12, t: 22, b: 30 };

function el<K extends keyof SVGElementTagNameMap>(tag: K, a: Record<string, string | number> = {}, text?: string): SVGElementTagNameMap[K] {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(a)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function niceTicks(lo: number, hi: number, n = 4): number[] {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export function fmt(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1);
  return Number(v.toPrecision(3)).toString();
}

/**
 * `legend: false` for a chart whose title already names its one series; `empty`: what the chart
 * says before its first point; `nonNegative`: the y axis starts at 0 at the lowest. The svg's data-points counts the points drawn.
 */
export function lineChart(title: string, series: Series[], xLabel: string, opts: { legend?: boolean; empty?: string; nonNegative?: boolean } = {}): SVGSVGElement {
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
  const all = series.flatMap((s) => s.points);
  svg.dataset.points = String(all.length);
  svg.append(el("title", {}, `${title}: ${series.map((s) => `${s.name} ${s.points.length ? fmt(s.points[s.points.length - 1][1]) : "–"}`).join(", ")}`));
  svg.append(el("text", { x: PAD.l, y: 14, class: "chart-title" }, title));
  if (all.length === 0) {
    svg.append(el("text", { x: W / 2, y: H / 2, class: "chart-empty", "text-anchor": "middle" }, opts.empty ?? "waiting for the first step…"));
    return svg;
  }
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  // Reduced, not spread: a long run's hundreds of thousands of points would overflow the call stack.
  const lo = (v: number[]) => v.reduce((a, b) => Math.min(a, b), Infinity);
  const hi = (v: number[]) => v.reduce((a, b) => Math.max(a, b), -Infinity);
  const [x0, x1] = [lo(xs), Math.max(hi(xs), lo(xs) + 1)];
  let [y0, y1] = [lo(ys), hi(ys)];
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 0.5 * Math.abs(y0 || 1), y1 + 0.5 * Math.abs(y1 || 1)];
  // A quantity that cannot fall below zero (a KL) keeps its axis there when the padding above would cross it.
  if (opts.nonNegative && y0 < 0) y0 = 0;
  const sx = (x: number) => PAD.l + ((x - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
  const sy = (y: number) => H - PAD.b - ((y - y0) / (y1 - y0)) * (H - PAD.t - PAD.b);
  for (const t of niceTicks(y0, y1)) {
    svg.append(el("line", { x1: PAD.l, x2: W - PAD.r, y1: sy(t), y2: sy(t), class: "grid" }));
    svg.append(el("text", { x: PAD.l - 6, y: sy(t) + 4, class: "tick", "text-anchor": "end" }, fmt(t)));
  }
  for (const t of niceTicks(x0, x1, 5)) svg.append(el("text", { x: sx(t), y: H - PAD.b + 14, class: "tick", "text-anchor": "middle" }, fmt(t)));
  svg.append(el("text", { x: W - PAD.r, y: H - 4, class: "tick", "text-anchor": "end" }, xLabel));
  svg.append(el("line", { x1: PAD.l, x2: PAD.l, y1: PAD.t, y2: H - PAD.b, class: "axis" }), el("line", { x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b, class: "axis" }));
  let lx = W - PAD.r;
  for (const s of [...series].reverse()) {
    if (s.points.length === 0) continue;
    const d = s.points.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    svg.append(el("path", { d, class: `line ${s.cls}${s.dashed ? " dashed" : ""}` }));
    if (s.points.length === 1) svg.append(el("circle", { cx: sx(s.points[0][0]), cy: sy(s.points[0][1]), r: 3, class: `dot ${s.cls}` }));
    if (opts.legend === false) continue;
    const label = el("text", { x: lx, y: 14, class: `legend ${s.cls}`, "text-anchor": "end" }, s.name);
    svg.append(label);
    lx -= 8 + 7 * s.name.length;
  }
  return svg;
}
