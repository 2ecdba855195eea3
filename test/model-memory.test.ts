/**
 * engine/model/memory.ts against numbers worked out by hand from the layouts: MatMulNBits keeps
 * 32 weights in 32·bits/8 bytes plus a float32 scale (8 bits: 36 bytes, 4 bits: 20), the
 * embedding and norms stay float32, training adds an 8-bit transposed copy of each quantized
 * linear, AdamW keeps 16 bytes per trainable parameter. Two models: the stories260K GGUF
 * fixtures (whose tensor types llama.cpp chose: ffn_down stays F32 in the Q8_0 file, its rows of
 * 172 not being whole blocks) and a synthetic TinyLlama-1.1B-shaped config stored like a Q4_K_M file.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as path from "node:path";
import { FIXTURES } from "./fixtures";
import { parseModelConfig, type ModelConfig } from "../engine/model/config";
import { openWeightSource, readModelConfigAt } from "../engine/model/source";
import { expectedWeights } from "../engine/model/weights";
import { heldLayout } from "../engine/model/quantized";
import { estimateMemory, storedComposition, weightBytes, type WeightHeaders } from "../engine/model/memory";

const GGUF = path.join(FIXTURES, "stories260k", "gguf");
const open = (file: string) => {
  const c = readModelConfigAt(file);
  return { c, src: openWeightSource(file, c) };
};

test("stories260K Q8_0: stored-as shares (Q8_0 everywhere but ffn_down and the norms, which are F32)", () => {
  const { c, src } = open(path.join(GGUF, "stories260K-q8_0.gguf"));
  const shares = storedComposition(c, src);
  // Q8_0: token_embd and output [512, 64] and, per layer, q [64,64], k and v [32,64], o [64,64], gate and up [172,64].
  const q8Params = 2 * 512 * 64 + 5 * (64 * 64 * 2 + 32 * 64 * 2 + 172 * 64 * 2);
  // F32: ffn_down [64,172] per layer, 11 norms of 64.
  const f32Params = 5 * 64 * 172 + 11 * 64;
  assert.equal(q8Params + f32Params, 292_800);
  assert.deepEqual(
    shares.map((s) => [s.type, s.tensors, s.parameters, s.bytes]),
    [
      ["Q8_0", 32, q8Params, (q8Params / 32) * 34],
      ["F32", 16, f32Params, f32Params * 4],
    ],
  );
  const bytes = (q8Params / 32) * 34 + f32Params * 4;
  assert.ok(Math.abs(shares[0].byteShare - 251_872 / bytes) < 1e-12 && Math.abs(shares[0].parameterShare - q8Params / 292_800) < 1e-12);
  assert.equal(bytes, src.storedBytes(), "the shares add up to the file's tensor bytes");
});

test("stories260K f32 and the safetensors folder: all F32", () => {
  for (const file of [path.join(GGUF, "stories260K-f32.v3.gguf"), path.join(FIXTURES, "stories260k", "hf")]) {
    const { c, src } = open(file);
    assert.deepEqual(storedComposition(c, src).map((s) => [s.type, s.parameters, s.byteShare]), [["F32", 292_800, 1]]);
  }
});

test("stories260K Q8_0: weights held as stored, f32, q8, q4, and the decode session's prepacked copy", () => {
  const { c, src } = open(path.join(GGUF, "stories260K-q8_0.gguf"));
  const norms = 11 * 64 * 4; // float32 at every precision
  // A [N, 64] matrix is N rows of 2 blocks; [64, 172] is 64 rows of ceil(172/32) = 6 blocks; a block is 32 codes + a float32 scale.
  const linears = (bytesPerBlock: number) => (64 + 32 + 32 + 64 + 172 + 172) * 2 * bytesPerBlock; // q, k, v, o, gate, up
  const rows512 = (bytesPerBlock: number) => 512 * 2 * bytesPerBlock; // the embedding, the head
  // As stored: every Q8_0 matrix (embedding and head included) as its blocks; ffn_down is F32 in the file.
  assert.equal(weightBytes(c, src, "stored").weights, norms + 2 * rows512(36) + 5 * (linears(36) + 64 * 172 * 4));
  assert.equal(weightBytes(c, src, "stored").weights, 489_664);
  assert.equal(weightBytes(c, src, "f32").weights, 292_800 * 4);
  assert.equal(weightBytes(c, src, "q8").weights, norms + 2 * rows512(36) + 5 * (linears(36) + 64 * 6 * 36));
  assert.equal(weightBytes(c, src, "q4").weights, norms + 2 * rows512(20) + 5 * (linears(20) + 64 * 6 * 20));
  // Decoding prepacks the matrices it multiplies by: the quantized linears and the head, not the gathered embedding.
  // onnxruntime's prepacked layout takes about 1.5 bytes a byte of blocks (measured 1.2-1.7x).
  assert.equal(weightBytes(c, src, "stored").decodeCopy, 1.5 * (5 * linears(36) + rows512(36)));
  assert.equal(weightBytes(c, src, "stored").decodeCopy, 344_736);
  assert.equal(weightBytes(c, src, "f32").decodeCopy, 0, "float32 weights are multiplied in place");
  const train = estimateMemory(c, src, "stored", { task: "train" });
  assert.equal(train.weights, 489_664);
  assert.equal(train.decodeCopy, 0, "training dequantizes each matrix where it is used, and the decode session is released");
  assert.equal(estimateMemory(c, src, "stored", { task: "chat" }).decodeCopy, 344_736);
});

/** TinyLlama-1.1B's config.json. */
const TINYLLAMA: ModelConfig = parseModelConfig({
  architectures: ["LlamaForCausalLM"],
  hidden_size: 2048,
  intermediate_size: 5632,
  num_hidden_layers: 22,
  num_attention_heads: 32,
  num_key_value_heads: 4,
  vocab_size: 32000,
  max_position_embeddings: 2048,
  tie_word_embeddings: false,
});

/** Headers of a Q4_K_M-like file: linears and the embedding Q4_K, the head Q6_K, norms F32. */
function q4kmHeaders(c: ModelConfig): WeightHeaders {
  const shapes = expectedWeights(c);
  return {
    has: (n) => shapes.has(n),
    shape: (n) => shapes.get(n)!,
    storedType: (n) => (n === "lm_head.weight" ? "Q6_K" : shapes.get(n)!.length === 2 ? "Q4_K" : "F32"),
  };
}

test("1.1B Q4_K_M-like: Q4_K held at 4 bits with zero points, Q6_K at 8; the decode copy leaves out the gathered embedding", () => {
  const src = q4kmHeaders(TINYLLAMA);
  const linearParams = 22 * (2048 * 2048 * 2 + 256 * 2048 * 2 + 5632 * 2048 * 3); // q, o; k, v; gate, up, down
  const headParams = 32000 * 2048;
  const embedParams = 32000 * 2048;
  const norms = (2 * 22 + 1) * 2048 * 4;
  const w = weightBytes(TINYLLAMA, src, "stored");
  // Q4_K has a per-block minimum: 4-bit blocks (16 bytes of codes + a float32 scale) with zero points, packed (½ byte) and unpacked (1 byte).
  const q4k = (params: number) => (params / 32) * (20 + 1.5); // every dimension here is a multiple of 32
  assert.equal(w.weights, q4k(embedParams) + norms + q4k(linearParams) + (headParams / 32) * 36);
  assert.equal(w.weights, 769_097_728);
  assert.equal(w.decodeCopy, 1.5 * (q4k(linearParams) + (headParams / 32) * 36));
  assert.equal(weightBytes(TINYLLAMA, src, "f32").weights, 1_100_048_384 * 4);
  assert.equal(weightBytes(TINYLLAMA, src, "q4").weights, norms + ((embedParams + linearParams + headParams) / 32) * 20);
});

test("1.1B: Excitor's trainable tensors and AdamW state, the chat's KV cache with K' per query head in adapted layers", () => {
  const src = q4kmHeaders(TINYLLAMA);
  const train = estimateMemory(TINYLLAMA, src, "stored", { task: "train" });
  // K 30, r 16 from 100 M parameters, on ceil(15/16 · 22) = 21 layers: prompts [30, 2048], down [16, 2048], up [2048, 16], gate [32].
  const excitor = 21 * (30 * 2048 + 16 * 2048 + 2048 * 16 + 32);
  assert.equal(train.trainableParameters, excitor);
  assert.equal(train.optimizer, excitor * 16);
  assert.equal(train.batch, 4);
  assert.equal(train.context, 512);
  const chat = estimateMemory(TINYLLAMA, src, "stored", { task: "chat" });
  assert.equal(chat.context, 2048, "the model's context, under CHAT_CONTEXT");
  // 21 adapted layers cache K' [32 heads · 64] and V [4 · 64]; the lowest caches K and V [4 · 64]; past and present together.
  assert.equal(chat.kvCache, 2 * 2048 * 4 * (21 * (2048 + 256) + 256 + 256));
  const plain = estimateMemory(TINYLLAMA, src, "stored", { task: "chat", method: "none", context: 1024 });
  assert.equal(plain.kvCache, 2 * 1024 * 4 * 22 * 512);
});

test("estimates add up, and order as they must: q4 < stored(Q8_0) < f32, train > chat, more context costs more", () => {
  const { c, src } = open(path.join(GGUF, "stories260K-q8_0.gguf"));
  for (const task of ["train", "chat"] as const) {
    const e = estimateMemory(c, src, "stored", { task });
    assert.equal(e.total, e.weights + e.decodeCopy + e.kvCache + e.activations + e.optimizer + e.overhead);
    const q4 = estimateMemory(c, src, "q4", { task }).weights;
    const f32 = estimateMemory(c, src, "f32", { task }).weights;
    assert.ok(q4 < e.weights && e.weights < f32);
  }
  const src11 = q4kmHeaders(TINYLLAMA);
  assert.ok(estimateMemory(TINYLLAMA, src11, "stored", { task: "train" }).total > estimateMemory(TINYLLAMA, src11, "stored", { task: "chat", context: 512 }).total);
  const short = estimateMemory(TINYLLAMA, src11, "stored", { task: "train", context: 256 });
  const long = estimateMemory(TINYLLAMA, src11, "stored", { task: "train", context: 1024 });
  assert.ok(long.activations > 2 * short.activations, "attention probabilities grow with the square of the context");
  const full = estimateMemory(TINYLLAMA, src11, "q4", { task: "train", method: "full" });
  assert.equal(full.precision, "f32", "full fine-tuning trains float32 weights");
  assert.equal(full.optimizer, 1_100_048_384 * 16);
});

/** The precision heldLayout holds a tensor at. */
function heldAs(shape: number[], storedType: string, precision: "stored" | "f32" | "q8" | "q4"): string {
  const l = heldLayout(shape, storedType, precision);
  return l.kind === "float32" ? "f32" : l.bits === 8 ? "q8" : "q4";
}

test("heldLayout: only matrices are quantized; as stored, Q8_0/Q4_0 as they are, 5- and 6-bit types at 8 bits, Q4_1/Q4_K at 4, float types as float32", () => {
  const m = [64, 172];
  assert.deepEqual(
    ["Q8_0", "Q6_K", "Q5_K", "Q5_1", "Q5_0", "Q4_K", "Q4_1", "Q4_0", "F16", "BF16", "F32"].map((t) => heldAs(m, t, "stored")),
    ["q8", "q8", "q8", "q8", "q8", "q4", "q4", "q4", "f32", "f32", "f32"],
  );
  assert.equal(heldAs([32000, 2048], "F16", "q4"), "q4", "the embedding too: it is gathered from its codes");
  assert.equal(heldAs([64], "F32", "q8"), "f32", "vectors stay float32");
  assert.equal(heldAs(m, "Q8_0", "f32"), "f32");
  assert.deepEqual(heldLayout(m, "Q8_0", "stored"), { kind: "blocks", bits: 8, asymmetric: false, exact: true }, "ggml's Q8_0 blocks are MatMulNBits' as they are");
  assert.deepEqual(heldLayout(m, "Q4_K", "stored"), { kind: "blocks", bits: 4, asymmetric: true, exact: false }, "a per-block minimum needs zero points");
  assert.deepEqual(heldLayout(m, "Q4_0", "q8"), { kind: "blocks", bits: 8, asymmetric: false, exact: false });
});
