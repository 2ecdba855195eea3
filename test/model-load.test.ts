/** Loading real checkpoint layouts: dtypes, shards, architectures, config values, memory limits. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { openModel } from "../engine/load";
import { tf } from "../engine/backends/tfjs";
import { ExcitorInputError } from "../engine/errors";
import { parseModelConfig } from "../engine/model/config";
import { ropeInverseFrequencies } from "../engine/model/rope";
import { expectedWeights } from "../engine/model/weights";
import { readHeader, readTensorF32 } from "../engine/formats/safetensors";
import { rewriteAsHalf } from "./helpers/half-weights";
import { tempDir, writeTinyModel } from "./helpers/tiny-model";

const ids = [1, 40, 51, 62, 73, 84, 95, 44];

for (const dtype of ["F16", "BF16"] as const) {
  test(`${dtype} weights load and compute in float32: same log-probs as the F32 twin`, async () => {
    const root = tempDir();
    const dir = writeTinyModel(path.join(root, "m"), { seed: 8 });
    rewriteAsHalf(dir, dtype, path.join(root, "twin"));
    const a = await openModel(dir);
    const b = await openModel(path.join(root, "twin"));
    assert.deepEqual(Array.from(await a.tokenLogprobs(ids, false)), Array.from(await b.tokenLogprobs(ids, false)));
    a.dispose();
    b.dispose();
  });
}

test("sharded checkpoints (model.safetensors.index.json) give the same model as one file", async () => {
  const root = tempDir();
  const one = writeTinyModel(path.join(root, "one"), { seed: 9 });
  const sharded = path.join(root, "sharded");
  fs.cpSync(one, sharded, { recursive: true });
  fs.rmSync(path.join(sharded, "model.safetensors"));
  // Two shards: copy the file twice and point half the names at each (extra tensors in a shard are ignored).
  const h = readHeader(path.join(one, "model.safetensors"));
  const names = Object.keys(h.tensors);
  fs.copyFileSync(path.join(one, "model.safetensors"), path.join(sharded, "model-00001-of-00002.safetensors"));
  fs.copyFileSync(path.join(one, "model.safetensors"), path.join(sharded, "model-00002-of-00002.safetensors"));
  const weight_map = Object.fromEntries(names.map((n, i) => [n, `model-0000${(i % 2) + 1}-of-00002.safetensors`]));
  fs.writeFileSync(path.join(sharded, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map }));
  const a = await openModel(one);
  const b = await openModel(sharded);
  assert.deepEqual(Array.from(await b.tokenLogprobs(ids, false)), Array.from(await a.tokenLogprobs(ids, false)));
  fs.rmSync(path.join(sharded, "model-00002-of-00002.safetensors"));
  await assert.rejects(openModel(sharded), /shard model-00002-of-00002\.safetensors .* is missing/);
  a.dispose();
  b.dispose();
});

test("unknown architectures and unsupported config values are refused by name", () => {
  const base = { architectures: ["LlamaForCausalLM"], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 10 };
  const err = (json: object) => {
    try {
      parseModelConfig(json as Record<string, unknown>, "/x/config.json");
    } catch (e) {
      assert.ok(e instanceof ExcitorInputError);
      return e.message;
    }
    assert.fail("accepted");
  };
  assert.match(err({ ...base, architectures: ["GPT2LMHeadModel"] }), /config\.json: "architectures" names GPT2LMHeadModel, which Excitor does not support/);
  assert.match(err({ ...base, hidden_act: "gelu" }), /"hidden_act" is "gelu"/);
  assert.match(err({ ...base, num_key_value_heads: 3 }), /"num_key_value_heads" \(3\) must divide/);
  assert.match(err({ ...base, rope_scaling: { rope_type: "yarn", factor: 4 } }), /"rope_scaling.rope_type" "yarn" is not supported/);
  assert.match(err({ ...base, hidden_size: "32" }), /"hidden_size" must be a positive integer/);
  // A context no model has would size RoPE tables and masks past any memory.
  assert.match(err({ ...base, max_position_embeddings: 1e12 }), /"max_position_embeddings" is 1000000000000; at most 16777216 tokens are supported/);
  assert.doesNotThrow(() => parseModelConfig({ ...base, max_position_embeddings: 10_485_760 }, "/x/config.json"), "Llama 4 Scout's 10M context");
});

test("LLaMA, Mistral and Qwen2 configs: GQA, head_dim, biases, tied embeddings, sliding window", () => {
  const common = { hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 8, vocab_size: 10 };
  const q = parseModelConfig({ ...common, architectures: ["Qwen2ForCausalLM"], num_key_value_heads: 2, tie_word_embeddings: true });
  assert.deepEqual([q.numKvHeads, q.qkvBias, q.oBias, q.tieWordEmbeddings, q.headDim], [2, true, false, true, 8]);
  const l = parseModelConfig({ ...common, architectures: ["LlamaForCausalLM"], attention_bias: true, head_dim: 16, num_key_value_heads: 1 });
  assert.deepEqual([l.qkvBias, l.oBias, l.headDim, l.numKvHeads], [true, true, 16, 1]);
  const m = parseModelConfig({ ...common, architectures: ["MistralForCausalLM"], sliding_window: 4, max_position_embeddings: 32 });
  assert.equal(m.slidingWindow, 4);
});

test("llama3 rope scaling: long wavelengths slowed by factor, short ones kept", () => {
  const c = parseModelConfig({
    architectures: ["LlamaForCausalLM"], hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, vocab_size: 10, rope_theta: 500000,
    rope_scaling: { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  });
  const scaled = ropeInverseFrequencies(c);
  const plain = ropeInverseFrequencies({ ...c, ropeScaling: undefined });
  assert.equal(scaled[0], plain[0]); // wavelength 2π < 8192/4: kept
  const last = scaled.length - 1; // wavelength far above 8192: divided by 32
  assert.ok(Math.abs(scaled[last] - plain[last] / 32) < 1e-18);
  const mid = plain.findIndex((f) => 2 * Math.PI / f > 2048 && 2 * Math.PI / f < 8192);
  assert.ok(scaled[mid] < plain[mid] && scaled[mid] > plain[mid] / 32, "smooth blend between");
});

test("a model whose float32 weights exceed the wasm heap is refused with what would run it", async () => {
  const dir = path.join(tempDir(), "huge");
  fs.mkdirSync(dir);
  const cfg = { architectures: ["LlamaForCausalLM"], hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, vocab_size: 32000 };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(cfg));
  // A sparse file: a header that declares every weight of a 7B model in BF16 (13 GB), no real data on disk.
  const header: Record<string, unknown> = {};
  let end = 0;
  for (const [name, shape] of expectedWeights(parseModelConfig(cfg))) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: "BF16", shape, data_offsets: [end, end + bytes] };
    end += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const file = path.join(dir, "model.safetensors");
  fs.writeFileSync(file, Buffer.concat([len, json]));
  fs.truncateSync(file, 8 + json.length + end);
  await assert.rejects(openModel(dir, { backend: "tfjs-wasm" }), /needs 25\.1 GiB of float32 weights, but the tfjs wasm backend's memory is capped at 4\.0 GiB; run it on the onnxruntime engine \(--backend ort\), install @tensorflow\/tfjs-node-gpu/);
});

test("an unknown backend name is refused with the list, not run on another backend", async () => {
  const dir = writeTinyModel(path.join(tempDir(), "m"), { seed: 3 });
  await assert.rejects(openModel(dir, { backend: "onnx" as never }), (e: Error) => e instanceof ExcitorInputError && /^backend "onnx" is not one of auto, ort, ort-cpu, .*tfjs-cpu$/.test(e.message));
});

test("missing folder, missing config and non-safetensors weights are named", async () => {
  const root = tempDir();
  await assert.rejects(openModel(path.join(root, "nope")), /nope: model folder not found/);
  fs.mkdirSync(path.join(root, "empty"));
  await assert.rejects(openModel(path.join(root, "empty")), /empty[/\\]config\.json: not found/);
  const dir = writeTinyModel(path.join(root, "bin"));
  fs.renameSync(path.join(dir, "model.safetensors"), path.join(dir, "pytorch_model.bin"));
  await assert.rejects(openModel(dir), /no model\.safetensors .*found pytorch_model\.bin: only safetensors weights are supported/);
});

test("Qwen2: q/k/v biases are loaded and used (zero biases equal the bias-free LLaMA exactly)", async () => {
  const root = tempDir();
  const llama = await openModel(writeTinyModel(path.join(root, "llama"), { seed: 21 }));
  const zero = await openModel(writeTinyModel(path.join(root, "qwen0"), { seed: 21, architecture: "Qwen2ForCausalLM", qkvBias: 0 }));
  const q = await openModel(writeTinyModel(path.join(root, "qwen"), { seed: 21, architecture: "Qwen2ForCausalLM", qkvBias: 0.5 }));
  const base = Array.from(await llama.tokenLogprobs(ids, false));
  assert.deepEqual(Array.from(await zero.tokenLogprobs(ids, false)), base);
  assert.notDeepEqual(Array.from(await q.tokenLogprobs(ids, false)), base);
  for (const rt of [llama, zero, q]) rt.dispose();
});

test("tied embeddings: no lm_head.weight, logits come from the embedding matrix", async () => {
  const root = tempDir();
  const tied = await openModel(writeTinyModel(path.join(root, "tied"), { seed: 22, tieWordEmbeddings: true }));
  assert.equal(tied.config.tieWordEmbeddings, true);
  const lp = await tied.tokenLogprobs(ids, false);
  assert.ok(lp.every(Number.isFinite));
  tied.dispose();
});

test("loading holds exactly one float32 copy of the weights on the tfjs backend, and dispose frees it", async () => {
  const root = tempDir();
  const dir = writeTinyModel(path.join(root, "m"), { seed: 23, hidden: 64, intermediate: 128 });
  const before = tf.memory().numBytes;
  const rt = await openModel(dir, { backend: "tfjs" });
  const held = tf.memory().numBytes - before;
  const file = readHeader(path.join(dir, "model.safetensors"));
  const f32 = Object.values(file.tensors).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1) * 4, 0);
  assert.equal(held, f32);
  rt.dispose();
  assert.equal(tf.memory().numBytes, before, "dispose frees everything");
});

test("Mistral sliding-window attention: a token sees only the last `sliding_window` positions", async () => {
  const dir = writeTinyModel(path.join(tempDir(), "mistral"), { seed: 24, layers: 1, architecture: "MistralForCausalLM" });
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...cfg, sliding_window: 2 }));
  const rt = await openModel(dir);
  const a = await rt.tokenLogprobs([1, 40, 51, 62, 73, 84], false);
  const b = await rt.tokenLogprobs([1, 45, 51, 62, 73, 84], false); // token 1 changed
  // One layer, window 2: position p sees p-1 and p, so predictions from position 3 on never see position 1.
  for (const i of [1, 2]) assert.notEqual(a[i], b[i], `position ${i} sees the change`);
  assert.deepEqual(Array.from(a.slice(3)), Array.from(b.slice(3)));
  rt.dispose();
});
