/**
 * The picture heatmap's numbers and layout, DOM-free so that they are unit-tested in plain Node:
 * which cell of the G×G grid a patch is, where that cell lies on a picture drawn `side` pixels
 * wide, the attention through each patch for one head or the mean of heads and one response token
 * or the whole response, and the share of attention that goes through the image at all.
 */
import type { ImageAttention } from "../engine/analysis/image-attention-types";

/** The encoder's patches run row-major over the grid: patch n is row ⌊n / G⌋, column n mod G. */
export function patchCell(n: number, grid: number): { row: number; col: number } {
  return { row: Math.floor(n / grid), col: n % grid };
}

/**
 * Patch n's cell on a picture `side` pixels wide, in whole pixels; neighbouring cells share their
 * edges (no gaps, no overlaps), also when `side` is not a multiple of the grid.
 */
export function cellRect(n: number, grid: number, side: number): { x: number; y: number; w: number; h: number } {
  const { row, col } = patchCell(n, grid);
  const edge = (i: number) => Math.round((i * side) / grid);
  return { x: edge(col), y: edge(row), w: edge(col + 1) - edge(col), h: edge(row + 1) - edge(row) };
}

/** The patch under a point of the picture (x, y in the picture's own pixels), or undefined outside it. */
export function patchAt(x: number, y: number, grid: number, side: number): number | undefined {
  if (!(x >= 0 && y >= 0 && x < side && y < side)) return undefined;
  const col = Math.min(grid - 1, Math.floor((x * grid) / side));
  const row = Math.min(grid - 1, Math.floor((y * grid) / side));
  return row * grid + col;
}

/** What the overlay shows: per patch, and through the class token. */
export interface ImageMass {
  patches: number[];
  cls: number;
}

/** How many response tokens the image report covers. */
export function imageTokenCount(img: ImageAttention): number {
  return img.layers[0]?.cls[0]?.length ?? 0;
}

/**
 * Layer `layer` (an index into img.layers): head `head` (−1: the mean of the heads) and response
 * token `token` (−1: the mean over the response's tokens). No tokens: zero everywhere.
 */
export function imageMass(img: ImageAttention, layer: number, head: number, token: number): ImageMass {
  const n = img.grid * img.grid;
  const l = img.layers[layer];
  const patches = new Array<number>(n).fill(0);
  let cls = 0;
  if (!l) return { patches, cls };
  const heads = head >= 0 ? [head] : l.mass.map((_, h) => h);
  const count = l.cls[0]?.length ?? 0;
  const tokens = token >= 0 ? [token] : Array.from({ length: count }, (_, i) => i);
  const cells = heads.length * tokens.length;
  if (cells === 0) return { patches, cls };
  for (const h of heads) {
    for (const i of tokens) {
      const row = l.mass[h]?.[i];
      if (!row) continue;
      for (let p = 0; p < n; p++) patches[p] += row[p] ?? 0;
      cls += l.cls[h]?.[i] ?? 0;
    }
  }
  for (let p = 0; p < n; p++) patches[p] /= cells;
  return { patches, cls: cls / cells };
}

/** The share of the attention that goes through the image: every patch and the class token. */
export function imageShare(m: ImageMass): number {
  let s = m.cls;
  for (const v of m.patches) s += v;
  return s;
}

/** The patch with the most attention (the first of equals), or undefined when none has any. */
export function peakPatch(patches: readonly number[]): number | undefined {
  let best: number | undefined;
  for (let p = 0; p < patches.length; p++) if (patches[p] > 0 && (best === undefined || patches[p] > patches[best])) best = p;
  return best;
}

/** A cell's opacity over the picture: in proportion to its mass, the brightest at `top`; nothing when all are zero. */
export function cellAlpha(v: number, max: number, top = 0.8): number {
  return max > 0 && v > 0 ? top * Math.min(1, v / max) : 0;
}
