/**
 * Block quantization against its math: each value comes back within half a quantization step
 * (symmetric: the step is the block's scale; asymmetric: within one step where the range is
 * clamped), symmetric blocks quantize back to themselves, and ggml's own Q8_0 codes (llama.cpp's
 * quantizer, the stories260K GGUF) are reproduced from their dequantized values; plus which
 * weights the engine holds how (the --weights policy).
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as path from "node:path";
import { dequantizeBlocks, quantizeBlocks, unpackedZeroPoints, zeroPoint } from "../engine/model/quantize";
import { openWeightSource, readModelConfigAt } from "../engine/model/source";
import { holdWeights } from "../engine/onnx/held-weights";
import type { WeightSource } from "../engine/model/weights";
import type { BlockQuantized } from "../engine/model/quantized";
import { Rng } from "../engine/rng";
import { FIXTURES } from "./fixtures";

const Q8_FILE = path.join(FIXTURES, "stories260k", "gguf", "stories260K-q8_0.gguf");

function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  // Blocks of different scales, and a few all-zero and one-sided blocks.
  return Float32Array.from({ length: rows * cols }, (_, i) => {
    const blk = Math.floor((i % cols) / 32) + Math.floor(i / cols);
    if (blk % 7 === 3) return 0;
    const v = rng.normal() * 10 ** ((blk % 5) - 2);
    return blk % 7 === 5 ? Math.abs(v) + 0.5 : v;
  });
}

/**
 * max over elements of |x − x̂| / the element's block scale; `inRange`: only elements inside the
 * codes' range, scale·[−zp, 2^bits − 1 − zp].
 */
function errorInSteps(w: Float32Array, b: BlockQuantized, inRange = false): number {
  const back = dequantizeBlocks(b);
  const nb = Math.ceil(b.cols / 32);
  let worst = 0;
  for (let r = 0; r < b.rows; r++)
    for (let k = 0; k < b.cols; k++) {
      const blk = Math.floor(k / 32);
      const s = b.scales[r * nb + blk];
      const x = w[r * b.cols + k];
      const zp = zeroPoint(b, r, blk);
      if (inRange && s !== 0 && (x / s < -zp || x / s > 2 ** b.bits - 1 - zp)) continue;
      const e = Math.abs(x - back[r * b.cols + k]);
      worst = Math.max(worst, s === 0 ? (e === 0 ? 0 : Infinity) : e / Math.abs(s));
    }
  return worst;
}

for (const bits of [8, 4] as const) {
  test(`${bits}-bit symmetric blocks: values within half a step of their block's scale (4 bits: one step beyond the codes' range, Q4_0's [−8, 7]), zero blocks exact, rows of 72 padded to 3 blocks`, () => {
    const w = randomMatrix(5, 72, bits);
    const b = quantizeBlocks(w, 5, 72, bits);
    assert.equal(b.data.length, (5 * 3 * 32 * bits) / 8);
    assert.equal(b.zeroPoints, undefined);
    assert.ok(errorInSteps(w, b, true) <= 0.5 + 1e-5, `error ${errorInSteps(w, b, true)} steps`);
    assert.ok(errorInSteps(w, b) <= (bits === 8 ? 0.5 : 1) + 1e-5, `error ${errorInSteps(w, b)} steps`);
    // The scale is the largest magnitude over the code range's extreme (127 steps, or 8 for 4 bits).
    for (let r = 0; r < 5; r++) {
      const amax = Math.max(...Array.from(w.subarray(r * 72, r * 72 + 32), Math.abs));
      assert.ok(Math.abs(Math.abs(b.scales[r * 3]) - amax / (bits === 8 ? 127 : 8)) <= 1e-7 * amax);
    }
  });

  test(`${bits}-bit symmetric blocks quantize back to the same codes and scales`, () => {
    const b = quantizeBlocks(randomMatrix(4, 96, 10 + bits), 4, 96, bits);
    const again = quantizeBlocks(dequantizeBlocks(b), 4, 96, bits);
    assert.deepEqual(again.data, b.data);
    for (let i = 0; i < b.scales.length; i++) assert.ok(Math.abs(again.scales[i] - b.scales[i]) <= 2 ** -22 * Math.abs(b.scales[i]));
  });

  test(`${bits}-bit asymmetric blocks: within one step (half a step inside the range), 0 exact, zero points in range`, () => {
    const w = randomMatrix(3, 64, 20 + bits);
    const b = quantizeBlocks(w, 3, 64, bits, { asymmetric: true });
    assert.ok(errorInSteps(w, b, true) <= 0.5 + 1e-5);
    assert.ok(errorInSteps(w, b) <= 1 + 1e-5);
    const back = dequantizeBlocks(b);
    w.forEach((x, i) => x === 0 && assert.equal(back[i], 0));
    const zps = unpackedZeroPoints(b);
    assert.equal(zps.length, 3 * 2);
    zps.forEach((z) => assert.ok(z >= 0 && z < 2 ** bits));
    assert.equal(zps[1], zeroPoint(b, 0, 1));
  });
}

test("ggml's Q8_0 codes (stories260K as llama.cpp quantized it) come back exactly from their dequantized values", () => {
  const src = openWeightSource(Q8_FILE, readModelConfigAt(Q8_FILE));
  const name = "model.layers.2.mlp.gate_proj.weight";
  assert.equal(src.storedType(name), "Q8_0");
  const blocks = src.readBlocks(name)!;
  // dequantizeBlocks agrees with the GGUF reader's own dequantization.
  assert.deepEqual(dequantizeBlocks(blocks), src.read(name).data);
  const again = quantizeBlocks(dequantizeBlocks(blocks), blocks.rows, blocks.cols, 8);
  assert.deepEqual(again.data, blocks.data);
  for (let i = 0; i < blocks.scales.length; i++) assert.ok(Math.abs(again.scales[i] - blocks.scales[i]) <= 2 ** -22 * Math.abs(blocks.scales[i]));
});

/** A WeightSource whose matrices claim the given ggml types (the values are random). */
function fakeSource(types: Record<string, string>): WeightSource {
  const shapes: Record<string, number[]> = { "model.embed_tokens.weight": [8, 32], "model.norm.weight": [32] };
  const p = "model.layers.0";
  for (const m of ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj"]) shapes[`${p}.${m}.weight`] = [32, 32];
  shapes[`${p}.mlp.down_proj.weight`] = [32, 32];
  shapes[`${p}.input_layernorm.weight`] = [32];
  shapes[`${p}.post_attention_layernorm.weight`] = [32];
  const read = (name: string) => ({ shape: shapes[name], data: randomMatrix(shapes[name][0], shapes[name][1] ?? 1, name.length) });
  return {
    path: "fake",
    has: (n) => n in shapes,
    shape: (n) => shapes[n],
    read,
    storedType: (n) => types[n] ?? "F32",
    readBlocks: (n) => (types[n] === "Q8_0" ? quantizeBlocks(read(n).data, 32, 32, 8) : undefined),
    float32Bytes: () => 0,
    storedBytes: () => 0,
  };
}

test("--weights stored keeps Q8_0/Q4_0 exact, requantizes Q4_1/Q4_K to 4 bits with zero points and Q5/Q6 types to 8 bits; F16 and vectors float32; q4 quantizes every matrix", () => {
  const c = { hiddenSize: 32, intermediateSize: 32, numLayers: 1, numHeads: 2, numKvHeads: 2, headDim: 16, vocabSize: 8, qkvBias: false, oBias: false, tieWordEmbeddings: true } as Parameters<typeof holdWeights>[1];
  const p = "model.layers.0";
  const types = { [`${p}.self_attn.q_proj.weight`]: "Q8_0", [`${p}.self_attn.k_proj.weight`]: "Q4_K", [`${p}.self_attn.v_proj.weight`]: "Q4_1", [`${p}.self_attn.o_proj.weight`]: "Q6_K", [`${p}.mlp.gate_proj.weight`]: "Q5_0", [`${p}.mlp.up_proj.weight`]: "F16" };
  const held = holdWeights(fakeSource(types), c, "stored");
  const how = (n: string) => {
    const h = held.get(n)!;
    return h.kind === "float32" ? "float32" : `${h.blocks.bits}${h.blocks.zeroPoints ? "+zp" : ""} ${h.how}`;
  };
  assert.equal(how(`${p}.self_attn.q_proj.weight`), "8 exact");
  assert.equal(how(`${p}.self_attn.k_proj.weight`), "4+zp requantized");
  assert.equal(how(`${p}.self_attn.v_proj.weight`), "4+zp requantized");
  assert.equal(how(`${p}.self_attn.o_proj.weight`), "8 requantized");
  assert.equal(how(`${p}.mlp.gate_proj.weight`), "8 requantized");
  assert.equal(how(`${p}.mlp.up_proj.weight`), "float32");
  assert.equal(how("model.norm.weight"), "float32");
  assert.equal(how("model.embed_tokens.weight"), "float32");
  const q4 = holdWeights(fakeSource(types), c, "q4");
  for (const [n, h] of q4) assert.equal(h.kind === "quantized" && h.blocks.bits, n.endsWith("norm.weight") ? false : 4, n);
  for (const h of holdWeights(fakeSource(types), c, "f32").values()) assert.equal(h.kind, "float32");
});
