/**
 * The multimodal demo's pictures: 32×32 RGB scenes of one to three flat shapes on a plain dark
 * background, drawn from a seeded generator so the vision tower's pretraining
 * (demo/scripts/pretrain-vision.ts) and the instruction set (demo/scripts/make-vision-data.ts)
 * are rebuilt byte for byte.
 *
 * A scene holds each kind of shape at most once and each place at most once, so "the circle"
 * and "the shape on the left" name one shape; colours may repeat. The four places sit at the
 * middle of each edge, and the tower sees the picture as a 4×4 grid of 8×8 patches: a shape
 * covers parts of two to four patches, so where it is is also which patches it lights up.
 */
import { Rng } from "../../engine/rng";

export const SCENE_SIZE = 32;
export const KINDS = ["square", "circle", "triangle"] as const;
export const COLORS = ["red", "green", "blue", "yellow"] as const;
export const POSITIONS = ["left", "right", "top", "bottom"] as const;
export type Kind = (typeof KINDS)[number];
export type Color = (typeof COLORS)[number];
export type Position = (typeof POSITIONS)[number];

export interface ShapeSpec {
  kind: Kind;
  color: Color;
  position: Position;
}

export interface SceneShape extends ShapeSpec {
  /** Centre in pixels (x right, y down) and half-size, as drawn. */
  cx: number;
  cy: number;
  half: number;
}

export interface Scene {
  /** RGB, row-major, SCENE_SIZE × SCENE_SIZE × 3. */
  pixels: Uint8Array;
  shapes: SceneShape[];
  /** Per pixel, the index in `shapes` of the shape covering at least half of it, or -1. */
  owner: Int8Array;
}

/** Base colour of each name; every shape gets its own small jitter around it. */
const RGB: Record<Color, [number, number, number]> = {
  red: [215, 45, 40],
  green: [45, 175, 60],
  blue: [45, 85, 225],
  yellow: [230, 205, 45],
};

const CENTRE: Record<Position, [number, number]> = { left: [7, 16], right: [25, 16], top: [16, 7], bottom: [16, 25] };

/** Sub-samples per pixel side: edges are anti-aliased so small circles look round. */
const SUPER = 4;

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)];

/**
 * `count` shapes with distinct kinds and distinct places and random colours. The first shape
 * takes the fields of `first` that are given (the shape a question is about).
 */
export function randomShapes(rng: Rng, count: number, first: Partial<ShapeSpec> = {}): ShapeSpec[] {
  if (!Number.isInteger(count) || count < 1 || count > KINDS.length) throw new RangeError(`a scene holds 1 to ${KINDS.length} shapes, not ${count}`);
  const kinds = rng.shuffle([...KINDS].filter((k) => k !== first.kind));
  const places = rng.shuffle([...POSITIONS].filter((p) => p !== first.position));
  const shapes: ShapeSpec[] = [];
  for (let i = 0; i < count; i++) {
    const head = i === 0;
    shapes.push({
      kind: head && first.kind ? first.kind : kinds.pop()!,
      color: head && first.color ? first.color : pick(rng, COLORS),
      position: head && first.position ? first.position : places.pop()!,
    });
  }
  return rng.shuffle(shapes); // drawing order says nothing about which shape was asked about
}

/** Coverage in [0, 1] of each pixel by the shape. */
function coverage(kind: Kind, cx: number, cy: number, half: number): Float32Array {
  const cov = new Float32Array(SCENE_SIZE * SCENE_SIZE);
  const inside = (x: number, y: number): boolean => {
    const dx = x - cx;
    const dy = y - cy;
    if (kind === "square") return Math.abs(dx) <= half && Math.abs(dy) <= half;
    if (kind === "circle") return dx * dx + dy * dy <= half * half * 1.1; // a little larger: same area feel as the square
    // triangle pointing up: apex at the top centre, base along the bottom edge
    const t = (dy + half) / (2 * half);
    return t >= 0 && t <= 1 && Math.abs(dx) <= t * half * 1.1;
  };
  const x0 = Math.max(0, Math.floor(cx - half - 2));
  const x1 = Math.min(SCENE_SIZE - 1, Math.ceil(cx + half + 2));
  const y0 = Math.max(0, Math.floor(cy - half - 2));
  const y1 = Math.min(SCENE_SIZE - 1, Math.ceil(cy + half + 2));
  for (let y = y0; y <= y1; y++)
    for (let x = x0; x <= x1; x++) {
      let n = 0;
      for (let sy = 0; sy < SUPER; sy++)
        for (let sx = 0; sx < SUPER; sx++) if (inside(x + (sx + 0.5) / SUPER, y + (sy + 0.5) / SUPER)) n++;
      cov[y * SCENE_SIZE + x] = n / (SUPER * SUPER);
    }
  return cov;
}

/**
 * Draws the shapes: each is jittered in place (±1 px), size (half-size 3.5 to 4.5 px) and
 * colour (±20 per channel), on a dark background of a random grey with a slight tint. Shapes
 * never overlap: a placement that would touch an earlier shape is drawn again.
 */
export function renderScene(rng: Rng, specs: readonly ShapeSpec[]): Scene {
  const n = SCENE_SIZE * SCENE_SIZE;
  const grey = 10 + rng.int(60);
  const bg = [0, 1, 2].map(() => Math.max(0, grey + rng.int(21) - 10));
  const pixels = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) pixels.set(bg, i * 3);
  const owner = new Int8Array(n).fill(-1);
  const taken = new Float32Array(n);
  const shapes: SceneShape[] = [];
  specs.forEach((spec, index) => {
    let cov: Float32Array | undefined;
    let placed: SceneShape | undefined;
    for (let attempt = 0; attempt < 50 && !cov; attempt++) {
      const [ox, oy] = CENTRE[spec.position];
      const shrink = Math.min(attempt, 20) * 0.05; // tight corners: try smaller after a few misses
      const cand = { ...spec, cx: ox + rng.next() * 2 - 1, cy: oy + rng.next() * 2 - 1, half: 3.5 + rng.next() - shrink };
      const c = coverage(spec.kind, cand.cx, cand.cy, cand.half);
      if (c.every((v, i) => v === 0 || taken[i] === 0)) {
        cov = c;
        placed = cand;
      }
    }
    if (!cov || !placed) throw new Error(`cannot place the ${spec.kind} on the ${spec.position} without overlap`);
    const rgb = RGB[spec.color].map((v) => Math.min(255, Math.max(0, v + rng.int(41) - 20)));
    for (let i = 0; i < n; i++) {
      const a = cov[i];
      if (a === 0) continue;
      taken[i] = a;
      for (let ch = 0; ch < 3; ch++) pixels[i * 3 + ch] = Math.round(a * rgb[ch] + (1 - a) * bg[ch]);
      if (a >= 0.5) owner[i] = index;
    }
    shapes.push(placed);
  });
  return { pixels, shapes, owner };
}

/** A scene of 1 to 3 random shapes. */
export function randomScene(rng: Rng): Scene {
  return renderScene(rng, randomShapes(rng, 1 + rng.int(KINDS.length)));
}
