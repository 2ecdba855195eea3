/**
 * The heatmap on a canvas: the theme's colours read from VS Code's CSS variables, a scene from
 * heatmap-layout.ts drawn with the 2D API, and the panel's own marks on top (the keyboard cursor,
 * the row and column of a focused token), which no export carries.
 */
import { css, type RGB, type Scene, type Theme } from "./heatmap-layout";

/** Any CSS colour → RGB, by letting a canvas parse it. */
function rgbOf(value: string, fallback: RGB): RGB {
  if (!value.trim()) return fallback;
  const c = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
  if (!c) return fallback;
  c.fillStyle = `rgb(${fallback.join(",")})`;
  c.fillStyle = value;
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
  const muted = rgbOf(v("--vscode-descriptionForeground"), [150, 150, 150]);
  return {
    background: rgbOf(v("--vscode-editor-background"), [30, 30, 30]),
    foreground,
    muted,
    positive: highContrast ? foreground : rgbOf(v("--vscode-charts-blue"), [55, 148, 255]),
    negative: rgbOf(v("--vscode-charts-red"), [241, 76, 76]),
    spans: {
      template: muted,
      // Yellow, not orange: VS Code's charts.orange is a translucent colour in some themes.
      instruction: rgbOf(v("--vscode-charts-yellow"), [204, 167, 0]),
      input: rgbOf(v("--vscode-charts-green"), [137, 209, 133]),
      response: rgbOf(v("--vscode-charts-purple"), [183, 128, 255]),
    },
  };
}

/** Draws `scene` into `g` at its own size (the caller sizes the canvas). */
export function drawScene(g: CanvasRenderingContext2D, s: Scene): void {
  g.fillStyle = s.background;
  g.fillRect(0, 0, s.width, s.height);
  for (const p of s.prims) {
    if (p.t === "rect") {
      g.fillStyle = p.fill;
      g.fillRect(p.x, p.y, p.w, p.h);
    } else if (p.t === "line") {
      g.strokeStyle = p.stroke;
      g.lineWidth = p.width;
      g.beginPath();
      g.moveTo(p.x1, p.y1);
      g.lineTo(p.x2, p.y2);
      g.stroke();
    } else {
      g.fillStyle = p.fill;
      // Canvas fonts do not resolve CSS variables: the scene's monospace stands in for the editor font.
      g.font = `${p.bold ? "bold " : ""}${p.size}px monospace`;
      g.textAlign = p.anchor === "start" ? "left" : p.anchor === "end" ? "right" : "center";
      g.textBaseline = "middle";
      if (p.rotate) {
        g.save();
        g.translate(p.x, p.y);
        g.rotate(-Math.PI / 2);
        g.fillText(p.text, 0, 0);
        g.restore();
      } else g.fillText(p.text, p.x, p.y);
    }
  }
}

/** Sizes `canvas` for `scene` at the screen's pixel ratio and draws it; returns the context for marks on top. */
export function paint(canvas: HTMLCanvasElement, s: Scene): CanvasRenderingContext2D {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(s.width * dpr);
  canvas.height = Math.round(s.height * dpr);
  canvas.style.width = `${s.width}px`;
  canvas.style.height = `${s.height}px`;
  const g = canvas.getContext("2d")!;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  drawScene(g, s);
  return g;
}

/** The keyboard cursor: a box around one cell (visible row and column positions). */
export function drawCursor(g: CanvasRenderingContext2D, s: Scene, t: Theme, row: number, col: number): void {
  const { cell } = s.layout;
  const [ox, oy] = s.origin;
  g.strokeStyle = css(t.foreground);
  g.lineWidth = 2;
  g.strokeRect(ox + col * cell - 1, oy + row * cell - 1, cell + 2, cell + 2);
}

/** A token's row (what it attends to) and column (what attends to it), outlined. */
export function drawTokenCross(g: CanvasRenderingContext2D, s: Scene, t: Theme, pos: number): void {
  const { cell, n } = s.layout;
  const [ox, oy] = s.origin;
  g.strokeStyle = css(t.foreground);
  g.lineWidth = 1.5;
  g.setLineDash([3, 2]);
  g.strokeRect(ox - 0.5, oy + pos * cell - 0.5, n * cell + 1, cell + 1);
  g.strokeRect(ox + pos * cell - 0.5, oy - 0.5, cell + 1, n * cell + 1);
  g.setLineDash([]);
}
