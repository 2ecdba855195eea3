/**
 * The loss curve as a small standalone SVG (training loss per step, validation loss as dots).
 * A chart library would need a DOM or a canvas in Node; one line chart is 50 lines of SVG.
 */
import { escapeXml } from "../engine/compare/svg";

export interface LossPoint {
  step: number;
  loss: number;
}

export function lossChartSvg(train: LossPoint[], validation: LossPoint[], title: string): string {
  const W = 640, H = 320, L = 56, R = 16, T = 36, B = 44;
  const all = [...train, ...validation];
  const maxStep = Math.max(1, ...all.map((p) => p.step));
  const lo = Math.min(...all.map((p) => p.loss));
  const hi = Math.max(...all.map((p) => p.loss));
  const pad = (hi - lo) * 0.05 || 0.5;
  const [y0, y1] = [Math.max(0, lo - pad), hi + pad];
  const x = (s: number) => L + (s / maxStep) * (W - L - R);
  const y = (v: number) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const f = (n: number) => n.toFixed(1);
  const ticks = (a: number, b: number, n: number) => Array.from({ length: n + 1 }, (_, i) => a + ((b - a) * i) / n);
  const grid = ticks(y0, y1, 4)
    .map((v) => `<line x1="${L}" x2="${W - R}" y1="${f(y(v))}" y2="${f(y(v))}" stroke="#ddd"/><text x="${L - 6}" y="${f(y(v) + 4)}" text-anchor="end">${v.toFixed(2)}</text>`)
    .join("");
  const xt = ticks(0, maxStep, 4)
    .map((s) => `<text x="${f(x(s))}" y="${H - B + 18}" text-anchor="middle">${Math.round(s)}</text>`)
    .join("");
  const line = train.map((p) => `${f(x(p.step))},${f(y(p.loss))}`).join(" ");
  const dots = validation.map((p) => `<circle cx="${f(x(p.step))}" cy="${f(y(p.loss))}" r="4" fill="#d95f02"/>`).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>
${grid}${xt}
<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">step</text>
<polyline fill="none" stroke="#1b9e77" stroke-width="1.5" points="${line}"/>${dots}
<g transform="translate(${W - R - 170},${T + 8})"><line x1="0" x2="20" y1="0" y2="0" stroke="#1b9e77" stroke-width="2"/><text x="26" y="4">training loss</text><circle cx="10" cy="18" r="4" fill="#d95f02"/><text x="26" y="22">validation loss</text></g>
</svg>
`;
}
