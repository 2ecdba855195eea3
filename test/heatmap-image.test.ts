/**
 * The picture heatmap's numbers, in plain Node (the module is DOM-free): patch n of the encoder
 * sits at row ⌊n/G⌋, column n mod G; the cells tile the drawn picture with no gaps or overlaps;
 * a point maps back to its patch; "mean of heads" and "whole response" are means over the heads
 * and the response's tokens; the share through the image counts every patch and the class token.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ImageAttention } from "../engine/analysis/image-attention-types";
import { cellAlpha, cellRect, imageMass, imageShare, imageTokenCount, patchAt, patchCell, peakPatch } from "../webview/heatmap-image";

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} ≠ ${b}`);

test("patches run row-major over the grid: patch n is row ⌊n/G⌋, column n mod G", () => {
  assert.deepEqual(patchCell(0, 16), { row: 0, col: 0 });
  assert.deepEqual(patchCell(15, 16), { row: 0, col: 15 });
  assert.deepEqual(patchCell(16, 16), { row: 1, col: 0 });
  assert.deepEqual(patchCell(16 * 16 - 1, 16), { row: 15, col: 15 });
  assert.deepEqual(patchCell(7, 3), { row: 2, col: 1 });
});

test("the cells tile the picture exactly, also when its side is not a multiple of the grid", () => {
  for (const [grid, side] of [[16, 224], [24, 336], [7, 100], [3, 10]]) {
    const covered = new Uint8Array(side * side);
    for (let n = 0; n < grid * grid; n++) {
      const r = cellRect(n, grid, side);
      assert.ok(r.w > 0 && r.h > 0, `cell ${n} of ${grid}×${grid} on ${side} px has an area`);
      for (let y = r.y; y < r.y + r.h; y++) for (let x = r.x; x < r.x + r.w; x++) covered[y * side + x]++;
    }
    assert.ok(covered.every((c) => c === 1), `${grid}×${grid} on ${side} px: every pixel in exactly one cell`);
  }
  assert.deepEqual(cellRect(17, 16, 224), { x: 14, y: 14, w: 14, h: 14 }, "224 px, 16 patches: 14 px cells");
});

test("a point on the picture maps back to its patch; outside the picture, none", () => {
  assert.equal(patchAt(0, 0, 16, 224), 0);
  assert.equal(patchAt(14, 0, 16, 224), 1);
  assert.equal(patchAt(13.9, 14, 16, 224), 16);
  assert.equal(patchAt(223.9, 223.9, 16, 224), 255);
  assert.equal(patchAt(224, 10, 16, 224), undefined);
  assert.equal(patchAt(-1, 10, 16, 224), undefined);
  for (let n = 0; n < 49; n++) {
    const r = cellRect(n, 7, 100);
    assert.equal(patchAt(r.x + r.w / 2, r.y + r.h / 2, 7, 100), n, `the centre of cell ${n} is in patch ${n}`);
  }
});

/** A 2×2 grid, 2 heads, 3 response tokens; layer 5 has known numbers, layer 9 nothing. */
function report(): ImageAttention {
  return {
    png: "data:image/png;base64,",
    size: 4,
    grid: 2,
    layers: [
      {
        layer: 5,
        mass: [
          // head 0: token 0, 1, 2
          [[0.1, 0, 0, 0], [0, 0.2, 0, 0], [0, 0, 0.3, 0.3]],
          // head 1
          [[0.3, 0, 0, 0], [0, 0, 0, 0.4], [0, 0, 0.1, 0.1]],
        ],
        cls: [[0.05, 0.1, 0], [0.15, 0, 0.2]],
      },
      { layer: 9, mass: [[[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]], cls: [[0, 0, 0], [0, 0, 0]] },
    ],
  };
}

test("one head and one token reads the report as it is", () => {
  const m = imageMass(report(), 0, 1, 1);
  assert.deepEqual(m.patches, [0, 0, 0, 0.4]);
  close(m.cls, 0, "cls");
  assert.equal(imageTokenCount(report()), 3);
});

test("mean of heads, whole response, and both: means over heads and response tokens", () => {
  const heads = imageMass(report(), 0, -1, 0);
  [0.2, 0, 0, 0].forEach((v, n) => close(heads.patches[n], v, `patch ${n}, mean of heads, token 0`));
  close(heads.cls, 0.1, "cls, mean of heads, token 0");
  const tokens = imageMass(report(), 0, 0, -1);
  [0.1 / 3, 0.2 / 3, 0.1, 0.1].forEach((v, n) => close(tokens.patches[n], v, `patch ${n}, head 0, whole response`));
  close(tokens.cls, 0.05, "cls, head 0, whole response");
  const both = imageMass(report(), 0, -1, -1);
  [0.4 / 6, 0.2 / 6, 0.4 / 6, 0.8 / 6].forEach((v, n) => close(both.patches[n], v, `patch ${n}, mean of heads, whole response`));
  close(both.cls, 0.5 / 6, "cls, mean of heads, whole response");
});

test("the share through the image counts every patch and the class token", () => {
  close(imageShare(imageMass(report(), 0, 0, 2)), 0.6, "head 0, token 2");
  close(imageShare(imageMass(report(), 0, -1, -1)), (1.8 + 0.5) / 6, "mean of heads, whole response");
  close(imageShare(imageMass(report(), 1, -1, -1)), 0, "a layer where nothing goes through the image");
});

test("the brightest patch is at full colour, the others in proportion; with nothing (the base model), the picture stays clear", () => {
  const m = imageMass(report(), 0, -1, -1);
  assert.equal(peakPatch(m.patches), 3);
  assert.equal(cellAlpha(m.patches[3], m.patches[3]), 0.8);
  close(cellAlpha(m.patches[1], m.patches[3]), 0.8 * 0.25, "a quarter of the peak");
  assert.equal(peakPatch([0, 0, 0, 0]), undefined);
  assert.equal(cellAlpha(0, 0), 0);
  assert.equal(peakPatch([0.2, 0.5, 0.5]), 1, "the first of equals");
});

test("an empty response or a missing layer gives zero everywhere, not NaN", () => {
  const empty: ImageAttention = { ...report(), layers: [{ layer: 5, mass: [[], []], cls: [[], []] }] };
  assert.equal(imageTokenCount(empty), 0);
  const m = imageMass(empty, 0, -1, -1);
  assert.deepEqual(m, { patches: [0, 0, 0, 0], cls: 0 });
  assert.deepEqual(imageMass(report(), 7, -1, -1), { patches: [0, 0, 0, 0], cls: 0 });
});
