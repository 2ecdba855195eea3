/**
 * Model and adapter folders made to hurt: shard paths that leave the folder, safetensors headers
 * that lie (sizes, offsets, shapes, types), configs that are `null`, weights that are NaN, and
 * checkpoints that do not fit their config. Each is refused with one line naming the file and
 * what is wrong, before any weight is trusted; a few go through the CLI end to end.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { loadAdapter } from "../engine/adapters";
import { ExcitorInputError } from "../engine/errors";
import { ExcitorAdapter } from "../engine/excitor/adapter";
import { readExcitorConfig } from "../engine/excitor/config";
import { MAX_HEADER_BYTES, readHeader, readTensorF32, writeSafetensors, type F32Tensor } from "../engine/formats/safetensors";
import { openModel } from "../engine/load";
import { LoraAdapter } from "../engine/lora/adapter";
import { readLoraConfig } from "../engine/lora/config";
import { readModelConfig, type ModelConfig } from "../engine/model/config";
import { rawSafetensors } from "./helpers/raw-safetensors";
import { copyModelWith, tempDir, writeTinyModel } from "./helpers/tiny-model";

const REPO = path.resolve(__dirname, "../..");
const BIN = path.join(REPO, "bin/excitor.js");

/** `excitor score` on `model`: the user-error contract is exit 2 and one `excitor: error:` line naming `mentions`. */
function assertCliRefuses(model: string, ...mentions: string[]): void {
  const r = spawnSync(process.execPath, [BIN, "score", "--model", model, "--text", "hi", "--json"], { encoding: "utf8", timeout: 60_000, env: { ...process.env, EXCITOR_DEBUG: "" } });
  assert.equal(r.status, 2, `exit code 2 expected; stdout: ${r.stdout} stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one stderr line expected, got: ${r.stderr}`);
  assert.match(lines[0], /^excitor: error: \S/);
  for (const m of mentions) assert.ok(lines[0].includes(m), `"${lines[0]}" should mention ${m}`);
}

/** Runs `fn` and returns its ExcitorInputError's message (a TypeError or success fails the test). */
async function inputError(fn: () => unknown): Promise<string> {
  try {
    const r = await fn();
    (r as { dispose?: () => void } | undefined)?.dispose?.();
  } catch (e) {
    assert.ok(e instanceof ExcitorInputError, `an ExcitorInputError expected, got ${(e as Error).stack}`);
    assert.ok(!e.message.includes("\n"), "one line");
    return e.message;
  }
  assert.fail("accepted");
}

const f32 = (shape: number[], begin: number) => ({ dtype: "F32", shape, data_offsets: [begin, begin + shape.reduce((a, b) => a * b, 1) * 4] });

/** The tiny model's config, for the adapter loaders. */
function tinyConfig(dir: string): ModelConfig {
  return readModelConfig(dir);
}

/** Writes `dir`'s model.safetensors.index.json, mapping each tensor of its model.safetensors to `shardOf(name)`. */
function shardedIndex(dir: string, shardOf: (name: string) => string): string {
  const names = Object.keys(readHeader(path.join(dir, "model.safetensors")).tensors);
  fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: Object.fromEntries(names.map((n) => [n, shardOf(n)])) }));
  return path.join(dir, "model.safetensors.index.json");
}

// --- shard paths --------------------------------------------------------------------------

test("a shard named ../other/model.safetensors is refused, not loaded from the other folder (CLI end to end)", async () => {
  const root = tempDir();
  const dir = writeTinyModel(path.join(root, "m"), { seed: 3 });
  writeTinyModel(path.join(root, "other"), { seed: 4 });
  const index = shardedIndex(dir, (n) => (n === "model.norm.weight" ? "../other/model.safetensors" : "model-00001-of-00001.safetensors"));
  fs.renameSync(path.join(dir, "model.safetensors"), path.join(dir, "model-00001-of-00001.safetensors"));
  const msg = await inputError(() => openModel(dir));
  assert.equal(msg, `${index}: shard "../other/model.safetensors" leads out of the model folder; a shard must be a file inside the model folder`);
  assertCliRefuses(dir, index, "../other/model.safetensors");
});

test("an absolute shard path is refused, even to a real safetensors file", async () => {
  const root = tempDir();
  const dir = writeTinyModel(path.join(root, "m"), { seed: 3 });
  const elsewhere = path.join(writeTinyModel(path.join(root, "other"), { seed: 3 }), "model.safetensors");
  const index = shardedIndex(dir, () => elsewhere);
  fs.rmSync(path.join(dir, "model.safetensors"));
  const msg = await inputError(() => openModel(dir));
  assert.equal(msg, `${index}: shard "${elsewhere}" is an absolute path; a shard must be a file inside the model folder`);
});

test("a shard that is a link out of the model folder is refused; the hub cache's links into its blobs/ load", async () => {
  const root = tempDir();
  const dir = writeTinyModel(path.join(root, "m"), { seed: 3 });
  const outside = path.join(writeTinyModel(path.join(root, "other"), { seed: 3 }), "model.safetensors");
  const index = shardedIndex(dir, () => "model-00001-of-00001.safetensors");
  fs.rmSync(path.join(dir, "model.safetensors"));
  fs.symlinkSync(outside, path.join(dir, "model-00001-of-00001.safetensors"));
  const msg = await inputError(() => openModel(dir));
  assert.equal(msg, `${index}: shard "model-00001-of-00001.safetensors" is a link to ${fs.realpathSync(outside)}, outside the model folder; a shard must be a file inside the model folder`);

  // ~/.cache/huggingface/hub/models--x--y/snapshots/<rev>/<file> -> ../../blobs/<hash>
  const repo = path.join(root, "hub", "models--x--y");
  const snapshot = path.join(repo, "snapshots", "0123abc");
  fs.mkdirSync(path.join(repo, "blobs"), { recursive: true });
  fs.mkdirSync(snapshot, { recursive: true });
  for (const f of fs.readdirSync(path.join(root, "other"))) {
    fs.copyFileSync(path.join(root, "other", f), path.join(repo, "blobs", `hash-${f}`));
    const name = f === "model.safetensors" ? "model-00001-of-00001.safetensors" : f;
    fs.symlinkSync(path.join("..", "..", "blobs", `hash-${f}`), path.join(snapshot, name));
  }
  shardedIndex(path.join(root, "other"), () => "model-00001-of-00001.safetensors");
  fs.renameSync(path.join(root, "other", "model.safetensors.index.json"), path.join(snapshot, "model.safetensors.index.json"));
  const rt = await openModel(snapshot);
  rt.dispose();
});

test("an index that is null, a weight_map that is not an object, or a shard that is not a name is refused by name", async () => {
  const dir = writeTinyModel(path.join(tempDir(), "m"));
  const index = path.join(dir, "model.safetensors.index.json");
  fs.renameSync(path.join(dir, "model.safetensors"), path.join(dir, "shard.safetensors"));
  fs.writeFileSync(index, "null");
  assert.equal(await inputError(() => openModel(dir)), `${index}: must hold a JSON object, not null`);
  fs.writeFileSync(index, JSON.stringify({ weight_map: ["shard.safetensors"] }));
  assert.match(await inputError(() => openModel(dir)), /index\.json: "weight_map" must be an object of tensor name to shard file, not a list$/);
  fs.writeFileSync(index, JSON.stringify({ weight_map: { "model.norm.weight": 7 } }));
  assert.equal(await inputError(() => openModel(dir)), `${index}: the shard of model.norm.weight must be a file name, not a number`);
});

// --- safetensors headers ------------------------------------------------------------------

test("a 2 GiB header length in a sparse file is refused at the format's 100 MB limit, without reading it", async () => {
  const file = path.join(tempDir(), "model.safetensors");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(2n ** 31n);
  fs.writeFileSync(file, len);
  fs.truncateSync(file, 2 ** 31 + 64); // sparse: costs no disk
  const before = process.memoryUsage().arrayBuffers;
  assert.equal(await inputError(() => readHeader(file)), `${file}: not a safetensors file (header length 2147483648 is over the format's 100000000-byte limit)`);
  assert.ok(process.memoryUsage().arrayBuffers - before < MAX_HEADER_BYTES, "the header was not read into memory");
  len.writeBigUInt64LE(5n * 2n ** 30n);
  fs.writeFileSync(file, len);
  fs.truncateSync(file, 6 * 2 ** 30);
  assert.match(await inputError(() => readHeader(file)), /header length 5368709120 is over the format's 100000000-byte limit/);
});

test("negative data_offsets are refused with what they must be", async () => {
  const file = rawSafetensors(path.join(tempDir(), "w.safetensors"), { a: { dtype: "F32", shape: [2], data_offsets: [-8, 0] } }, 8);
  assert.equal(await inputError(() => readHeader(file)), `${file}: tensor "a" has data_offsets [-8,0]; they must be two non-negative integers [begin, end]`);
});

test("fractional data_offsets are refused with what they must be", async () => {
  const file = rawSafetensors(path.join(tempDir(), "w.safetensors"), { a: { dtype: "F32", shape: [2], data_offsets: [0.5, 8.5] } }, 9);
  assert.equal(await inputError(() => readHeader(file)), `${file}: tensor "a" has data_offsets [0.5,8.5]; they must be two non-negative integers [begin, end]`);
});

test("data_offsets whose begin is after their end are refused", async () => {
  const file = rawSafetensors(path.join(tempDir(), "w.safetensors"), { a: { dtype: "F32", shape: [0], data_offsets: [8, 0] } }, 8);
  assert.equal(await inputError(() => readHeader(file)), `${file}: tensor "a" has data_offsets [8, 0]: begin is after end`);
});

test("overlapping tensors are refused, naming both", async () => {
  const file = rawSafetensors(path.join(tempDir(), "w.safetensors"), { a: f32([4], 0), b: f32([2], 8) }, 16);
  assert.equal(await inputError(() => readHeader(file)), `${file}: tensor "b" (data_offsets [8, 16]) overlaps tensor "a", which ends at 16`);
});

test("a gap between tensors, or data that no tensor covers, is refused", async () => {
  const dir = tempDir();
  const gap = rawSafetensors(path.join(dir, "gap.safetensors"), { a: f32([2], 0), b: f32([2], 12) }, 20);
  assert.equal(await inputError(() => readHeader(gap)), `${gap}: bytes 8..12 of the data section belong to no tensor (a gap before tensor "b")`);
  const tail = rawSafetensors(path.join(dir, "tail.safetensors"), { a: f32([2], 0) }, 12);
  assert.equal(await inputError(() => readHeader(tail)), `${tail}: the data section holds 12 bytes, but the tensors cover only the first 8`);
});

test("a truncated weights file is refused as truncated, naming the tensor past its end (CLI end to end)", async () => {
  const dir = path.join(tempDir(), "m");
  fs.cpSync(path.join(REPO, "demo/model"), dir, { recursive: true });
  const file = path.join(dir, "model.safetensors");
  fs.truncateSync(file, fs.statSync(file).size - 100);
  const msg = await inputError(() => openModel(dir));
  assert.match(msg, /model\.safetensors: tensor "model\.norm\.weight" ends at byte \d+ of the data section, but the file holds \d+ bytes of data: the file is truncated$/);
  assertCliRefuses(dir, file, "truncated");
});

test("a shape with negative or fractional dimensions is refused", async () => {
  const dir = tempDir();
  const neg = rawSafetensors(path.join(dir, "neg.safetensors"), { a: { dtype: "F32", shape: [-2, -1], data_offsets: [0, 8] } }, 8);
  assert.equal(await inputError(() => readHeader(neg)), `${neg}: tensor "a" has shape [-2,-1]; its dimensions must be non-negative integers`);
  const frac = rawSafetensors(path.join(dir, "frac.safetensors"), { a: { dtype: "F32", shape: [0.5, 4], data_offsets: [0, 8] } }, 8);
  assert.equal(await inputError(() => readHeader(frac)), `${frac}: tensor "a" has shape [0.5,4]; its dimensions must be non-negative integers`);
});

test("a byte count that does not match dtype and shape is refused when the header is read", async () => {
  const file = rawSafetensors(path.join(tempDir(), "w.safetensors"), { a: { dtype: "BF16", shape: [3], data_offsets: [0, 8] } }, 8);
  assert.equal(await inputError(() => readHeader(file)), `${file}: tensor "a" has 8 bytes (data_offsets [0, 8]), but BF16[3] takes 6`);
});

test("a header that is null or not an object, a tensor entry that is null, and a __metadata__ of the wrong type are refused", async () => {
  const dir = tempDir();
  const nul = rawSafetensors(path.join(dir, "null.safetensors"), "null", 0);
  assert.equal(await inputError(() => readHeader(nul)), `${nul}: safetensors header must be a JSON object, not null`);
  const list = rawSafetensors(path.join(dir, "list.safetensors"), "[1,2]", 0);
  assert.equal(await inputError(() => readHeader(list)), `${list}: safetensors header must be a JSON object, not a list`);
  const entry = rawSafetensors(path.join(dir, "entry.safetensors"), { a: null }, 0);
  assert.equal(await inputError(() => readHeader(entry)), `${entry}: tensor "a": the header entry must be an object, not null`);
  const meta = rawSafetensors(path.join(dir, "meta.safetensors"), { __metadata__: 5, a: f32([1], 0) }, 4);
  assert.equal(await inputError(() => readHeader(meta)), `${meta}: safetensors "__metadata__" must be an object of strings, not a number`);
  const value = rawSafetensors(path.join(dir, "value.safetensors"), { __metadata__: { template: 7 }, a: f32([1], 0) }, 4);
  assert.equal(await inputError(() => readHeader(value)), `${value}: safetensors "__metadata__" value "template" must be a string, not a number`);
});

// --- NaN and infinity ---------------------------------------------------------------------

test("a NaN in the model's weights is refused at load, naming the tensor and file (CLI end to end), not scored as perplexity NaN", async () => {
  const root = tempDir();
  const good = writeTinyModel(path.join(root, "good"), { seed: 5 });
  const dir = copyModelWith(good, path.join(root, "nan"), (name, t) => {
    if (name === "model.layers.1.mlp.up_proj.weight") t.data[17] = NaN;
    return t;
  });
  const file = path.join(dir, "model.safetensors");
  const msg = await inputError(() => openModel(dir));
  assert.equal(msg, `${file}: tensor "model.layers.1.mlp.up_proj.weight" holds NaN at element 17; the weights are corrupt (or were saved after training diverged)`);
  assertCliRefuses(dir, file, "model.layers.1.mlp.up_proj.weight", "NaN");
});

test("an infinity in F16 and BF16 weights is refused too", async () => {
  const dir = tempDir();
  for (const [dtype, bits] of [["F16", 0x7c00], ["BF16", 0xff80]] as const) {
    const file = rawSafetensors(path.join(dir, `${dtype}.safetensors`), { a: { dtype, shape: [2], data_offsets: [0, 4] } }, 4);
    const bytes = fs.readFileSync(file);
    bytes.writeUInt16LE(bits, bytes.length - 2); // element 1
    fs.writeFileSync(file, bytes);
    const want = dtype === "F16" ? "Infinity" : "-Infinity";
    assert.match(await inputError(() => readTensorF32(readHeader(file), "a")), new RegExp(`tensor "a" holds ${want} at element 1;`));
  }
});

/** Rewrites one tensor of the adapter in `dir` with `poison` written at element 0. */
function poisonAdapter(dir: string, tensor: string, poison: number): string {
  const file = path.join(dir, "adapter_model.safetensors");
  const h = readHeader(file);
  const out: Record<string, F32Tensor> = {};
  for (const name of Object.keys(h.tensors)) out[name] = readTensorF32(h, name);
  out[tensor].data[0] = poison;
  writeSafetensors(file, out, h.metadata);
  return file;
}

test("an Excitor adapter holding Infinity is refused at load, naming the tensor", async () => {
  const model = writeTinyModel(path.join(tempDir(), "m"));
  const config = tinyConfig(model);
  const dir = path.join(tempDir(), "excitor");
  ExcitorAdapter.create(config, { numPrompts: 2, rank: 2, seed: 1 }).save(dir);
  const file = poisonAdapter(dir, "base_model.model.model.layers.1.self_attn.excitor.up.weight", Infinity);
  const msg = await inputError(() => loadAdapter(dir, config));
  assert.equal(msg, `${file}: tensor "base_model.model.model.layers.1.self_attn.excitor.up.weight" holds Infinity at element 0; the weights are corrupt (or were saved after training diverged)`);
});

test("a LoRA adapter holding NaN is refused at load, naming the tensor", async () => {
  const model = writeTinyModel(path.join(tempDir(), "m"));
  const config = tinyConfig(model);
  const dir = path.join(tempDir(), "lora");
  LoraAdapter.create(config, { seed: 1 }).save(dir);
  const file = poisonAdapter(dir, "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight", NaN);
  const msg = await inputError(() => loadAdapter(dir, config));
  assert.equal(msg, `${file}: tensor "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight" holds NaN at element 0; the weights are corrupt (or were saved after training diverged)`);
});

// --- configs that are null ----------------------------------------------------------------

test("config.json holding null is an input error naming it, not an internal TypeError (CLI end to end)", async () => {
  const dir = writeTinyModel(path.join(tempDir(), "m"));
  const file = path.join(dir, "config.json");
  fs.writeFileSync(file, "null");
  assert.equal(await inputError(() => openModel(dir)), `${file}: must hold a JSON object, not null`);
  assertCliRefuses(dir, file, "must hold a JSON object, not null");
});

test("adapter_config.json holding null is an input error for both adapter kinds and for loadAdapter", async () => {
  const model = writeTinyModel(path.join(tempDir(), "m"));
  const config = tinyConfig(model);
  const dir = tempDir();
  const file = path.join(dir, "adapter_config.json");
  fs.writeFileSync(file, "null");
  const want = `${file}: must hold a JSON object, not null`;
  assert.equal(await inputError(() => loadAdapter(dir, config)), want);
  assert.equal(await inputError(() => readExcitorConfig(dir)), want);
  assert.equal(await inputError(() => readLoraConfig(dir, config.numLayers)), want);
  fs.writeFileSync(file, "[]");
  assert.equal(await inputError(() => readExcitorConfig(dir)), `${file}: must hold a JSON object, not a list`);
});

test("excitor serve with adapter_config.json = null emits its fatal event naming the file", async () => {
  const model = writeTinyModel(path.join(tempDir(), "m"));
  const adapter = tempDir();
  const file = path.join(adapter, "adapter_config.json");
  fs.writeFileSync(file, "null");
  const child = spawn(process.execPath, [path.join(REPO, "dist/bundle/excitor.js"), "serve", "--model", model, "--adapter", adapter], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const code = await new Promise((r) => child.on("close", r));
  const events = out.trim().split("\n").map((l) => JSON.parse(l) as { type: string; message: string; file?: string });
  assert.deepEqual(events.map((e) => e.type), ["fatal"]);
  assert.equal(events[0].message, `${file}: must hold a JSON object, not null`);
  assert.equal(code, 2);
});

// --- checkpoints that do not fit their config --------------------------------------------

test("num_hidden_layers smaller than the checkpoint's layers is refused, not a silently shorter model", async () => {
  const dir = writeTinyModel(path.join(tempDir(), "m"), { layers: 3 });
  const cfgFile = path.join(dir, "config.json");
  fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, "utf8")), num_hidden_layers: 2 }));
  assert.equal(await inputError(() => openModel(dir)), `${cfgFile}: "num_hidden_layers" is 2, but the checkpoint in ${dir} holds 3 layers`);
});

test("num_hidden_layers larger than the checkpoint's layers is refused by that name", async () => {
  const dir = writeTinyModel(path.join(tempDir(), "m"), { layers: 2 });
  const cfgFile = path.join(dir, "config.json");
  fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, "utf8")), num_hidden_layers: 4 }));
  assert.equal(await inputError(() => openModel(dir)), `${cfgFile}: "num_hidden_layers" is 4, but the checkpoint in ${dir} holds 2 layers`);
});

test("an unknown model_type is refused", async () => {
  const dir = writeTinyModel(path.join(tempDir(), "m"));
  const cfgFile = path.join(dir, "config.json");
  fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, "utf8")), model_type: "gemma" }));
  assert.equal(await inputError(() => openModel(dir)), `${cfgFile}: "model_type" is "gemma", which Excitor does not support; supported: llama, mistral, qwen2`);
});

test("a tensor the model does not use is refused; RoPE inv_freq buffers, a tied lm_head and Qwen2 biases are not", async () => {
  const root = tempDir();
  const base = writeTinyModel(path.join(root, "base"), { seed: 6 });
  const extra = copyModelWith(base, path.join(root, "extra"), (_, t) => t);
  const file = path.join(extra, "model.safetensors");
  const h = readHeader(file);
  const tensors: Record<string, F32Tensor> = {};
  for (const name of Object.keys(h.tensors)) tensors[name] = readTensorF32(h, name);
  // A bias LLaMA (attention_bias false) does not have: the engines would ignore it and run another model.
  writeSafetensors(file, { ...tensors, "model.layers.0.self_attn.q_proj.bias": { shape: [32], data: new Float32Array(32) } });
  assert.equal(
    await inputError(() => openModel(extra)),
    `${file}: tensor model.layers.0.self_attn.q_proj.bias is not a weight of this model (per ${path.join(extra, "config.json")}); the checkpoint and config.json do not belong together`,
  );

  const invFreq = { shape: [4], data: Float32Array.from([1, 0.1, 0.01, 0.001]) };
  writeSafetensors(file, { ...tensors, "model.layers.0.self_attn.rotary_emb.inv_freq": invFreq, "model.layers.1.self_attn.rotary_emb.inv_freq": invFreq });
  (await openModel(extra)).dispose();

  const cfgFile = path.join(extra, "config.json");
  fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, "utf8")), tie_word_embeddings: true }));
  (await openModel(extra)).dispose(); // lm_head.weight present but tied: HF ignores it too
  (await openModel(writeTinyModel(path.join(root, "qwen"), { architecture: "Qwen2ForCausalLM", qkvBias: 0.1 }))).dispose();
  (await openModel(writeTinyModel(path.join(root, "tied"), { tieWordEmbeddings: true }))).dispose();
});

test("an Excitor adapter holding a tensor its config does not list is refused, naming it", async () => {
  const model = writeTinyModel(path.join(tempDir(), "m"));
  const config = tinyConfig(model);
  const dir = path.join(tempDir(), "excitor");
  ExcitorAdapter.create(config, { numPrompts: 2, rank: 2, seed: 1, layers: [1] }).save(dir);
  const file = path.join(dir, "adapter_model.safetensors");
  const h = readHeader(file);
  const tensors: Record<string, F32Tensor> = Object.fromEntries(Object.keys(h.tensors).map((n) => [n, readTensorF32(h, n)]));
  // Layer 0's prompts, as an adapter trained on more layers than its config now says would hold.
  tensors["base_model.model.model.layers.0.self_attn.excitor.prompts"] = tensors["base_model.model.model.layers.1.self_attn.excitor.prompts"];
  writeSafetensors(file, tensors, h.metadata);
  const msg = await inputError(() => loadAdapter(dir, config));
  assert.equal(msg, `${file}: holds 1 tensor adapter_config.json's layers does not use, e.g. base_model.model.model.layers.0.self_attn.excitor.prompts`);
});
