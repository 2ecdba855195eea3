/**
 * LoRA adapters (the comparison method, PEFT's layout) on both engines: what a LoRA'd model
 * computes (the base model with B·A merged into its weights), the onnxruntime engine's
 * hand-derived LoRA gradients against tfjs's autodiff and finite differences, and the adapter
 * folder itself (init, save, load, the errors a bad folder gets).
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { loadAdapter } from "../engine/adapters";
import { ExcitorInputError } from "../engine/errors";
import { readHeader, readTensorF32, writeSafetensors, type F32Tensor } from "../engine/formats/safetensors";
import { openModel } from "../engine/load";
import { LoraAdapter, LORA_WEIGHTS } from "../engine/lora/adapter";
import { LORA_MODULES, type LoraModule, loraTensorName } from "../engine/lora/config";
import { Rng } from "../engine/rng";
import { makeBatch } from "../engine/train/batches";
import { adapterFiniteDifference } from "./helpers/finite-differences";
import { randomBatch, softRows } from "./helpers/batches";
import { maxAbsDiff, relDiff } from "./helpers/compare";
import { ENGINES } from "./helpers/engines";
import { copyModelWith, tempDir, writeTinyModel, type TinyModelOptions } from "./helpers/tiny-model";

const TOL = 1e-4;
const ALL_MODULES = Object.keys(LORA_MODULES) as LoraModule[];

/** Gives B random values (PEFT starts it at zero, which would make the adapter a no-op). */
function randomizeB(adapter: LoraAdapter, seed: number, std = 0.3): void {
  const rng = new Rng(seed);
  for (const p of adapter.pairs) p.B.data.forEach((_, i, b) => (b[i] = rng.normal() * std));
}

/** W + s·B·A, in plain loops: W [out, in], B [out, r], A [r, in]. */
function merge(W: F32Tensor, A: F32Tensor, B: F32Tensor, s: number): F32Tensor {
  const [out, inp] = W.shape;
  const r = A.shape[0];
  const data = W.data.slice();
  for (let o = 0; o < out; o++)
    for (let i = 0; i < inp; i++) {
      let sum = 0;
      for (let k = 0; k < r; k++) sum += B.data[o * r + k] * A.data[k * inp + i];
      data[o * inp + i] += s * sum;
    }
  return { shape: W.shape, data };
}

/** A copy of `base` with the adapter's pairs (those `keep` accepts) merged into the weights. */
function writeMerged(base: string, dst: string, adapter: LoraAdapter, keep: (layer: number, module: LoraModule) => boolean = () => true): string {
  const s = adapter.config.alpha / adapter.config.r;
  const byWeight = new Map(adapter.pairs.filter((p) => keep(p.layer, p.module)).map((p) => [`model.layers.${p.layer}.${LORA_MODULES[p.module]}.${p.module}.weight`, p]));
  return copyModelWith(base, dst, (name, t) => {
    const p = byWeight.get(name);
    return p ? merge(t, p.A, p.B, s) : t;
  });
}

for (const backend of ENGINES) {
  test(`a LoRA adapter on q_proj and v_proj computes the base model with W + (alpha/r)·B·A merged in, within 1e-4 (${backend}): log-probs, every row's distribution, decoding, attention`, async () => {
    const root = tempDir();
    const base = writeTinyModel(path.join(root, "base"), { hidden: 32, layers: 2, heads: 4, kvHeads: 2, seed: 41 });
    const rt = await openModel(base, { backend });
    const adapter = LoraAdapter.create(rt.config, { r: 4, alpha: 12, targets: ["q_proj", "v_proj"], seed: 3 });
    randomizeB(adapter, 4);
    rt.setAdapter(adapter);
    const merged = await openModel(writeMerged(base, path.join(root, "merged"), adapter), { backend });
    const top = rt.config.numLayers - 1;
    // The tuned model except the top layer's q_proj: its top layer attends as the adapter's "base" attention should.
    const baseQTop = await openModel(writeMerged(base, path.join(root, "merged-but-q"), adapter, (l, m) => !(l === top && m === "q_proj")), { backend });

    const rng = new Rng(8);
    const V = rt.config.vocabSize;
    const ids = Array.from({ length: 10 }, () => 3 + rng.int(V - 3));
    const tuned = await rt.tokenLogprobs(ids, true);
    assert.ok(maxAbsDiff(tuned, await merged.tokenLogprobs(ids, false)) < TOL, "log-probs");
    assert.ok(maxAbsDiff(tuned, await rt.tokenLogprobs(ids, false)) > 1e-3, "the adapter moves the log-probs");

    const rowIds = Int32Array.from(ids);
    assert.ok(maxAbsDiff(await rt.logprobRows(rowIds, 2, 5, true), await merged.logprobRows(rowIds, 2, 5, false)) < TOL, "next-token distributions of every row");

    const [d, dm] = [rt.startDecode(true), merged.startDecode(false)];
    for (const chunk of [ids.slice(0, 6), ids.slice(6, 7), ids.slice(7)]) assert.ok(maxAbsDiff(await d.feed(chunk), await dm.feed(chunk)) < TOL, "decoding with a cache");
    d.dispose();
    dm.dispose();

    const a = await rt.attentionProbs(ids, true);
    const am = await merged.attentionProbs(ids, false);
    const ab = await rt.attentionProbs(ids, false);
    const aq = await baseQTop.attentionProbs(ids, false);
    for (let l = 0; l <= top; l++) assert.ok(maxAbsDiff(a.tuned[l], am.tuned[l]) < TOL, `tuned attention, layer ${l}`);
    assert.ok(maxAbsDiff(a.base[0], ab.tuned[0]) < TOL, "base attention of layer 0: the base model's");
    assert.ok(maxAbsDiff(a.base[top], aq.tuned[top]) < TOL, "base attention of the top layer: un-adapted q and k on the tuned layer input");
    assert.ok(maxAbsDiff(a.base[top], a.tuned[top]) > 1e-4, "q_proj's LoRA moves the attention");
    for (const r of [rt, merged, baseQTop]) r.dispose();
  });
}

const CASES: { name: string; model: TinyModelOptions; layers?: number[] }[] = [
  { name: "MHA, every layer", model: { hidden: 48, layers: 2, heads: 4, kvHeads: 4, seed: 51 } },
  { name: "GQA, top layers, untied head", model: { hidden: 64, layers: 3, heads: 8, kvHeads: 2, intermediate: 80, seed: 52 }, layers: [1, 2] },
  { name: "Qwen2 q/k/v biases, tied embeddings, top layer only", model: { hidden: 32, layers: 2, heads: 4, kvHeads: 1, qkvBias: 0.3, architecture: "Qwen2ForCausalLM", tieWordEmbeddings: true, seed: 53 }, layers: [1] },
];

for (const c of CASES) {
  test(`onnxruntime = tfjs for LoRA on all seven modules (${c.name}): log-probs, attention, loss, and gradients of every A and B (hard and soft targets) within 1e-4`, async () => {
    const dir = writeTinyModel(path.join(tempDir(), "m"), c.model);
    const ort = await openModel(dir, { backend: "ort", forTraining: true });
    const tfjs = await openModel(dir, { backend: "tfjs", forTraining: true });
    const adapter = LoraAdapter.create(ort.config, { r: 4, alpha: 8, targets: ALL_MODULES, layers: c.layers, seed: 5 });
    randomizeB(adapter, 6, 0.2);
    ort.prepareTraining(adapter);
    tfjs.prepareTraining(adapter);
    const rng = new Rng(7);
    const V = ort.config.vocabSize;
    const ids = Array.from({ length: 11 }, () => 3 + rng.int(V - 3));
    for (const useAdapter of [false, true]) assert.ok(maxAbsDiff(await ort.tokenLogprobs(ids, useAdapter), await tfjs.tokenLogprobs(ids, useAdapter)) < TOL, `log-probs (adapter ${useAdapter})`);
    const [ao, at] = [await ort.attentionProbs(ids, true), await tfjs.attentionProbs(ids, true)];
    for (let l = 0; l < ort.config.numLayers; l++) {
      assert.ok(maxAbsDiff(ao.tuned[l], at.tuned[l]) < TOL, `tuned attention, layer ${l}`);
      assert.ok(maxAbsDiff(ao.base[l], at.base[l]) < TOL, `base attention, layer ${l}`);
    }
    for (const soft of [false, true]) {
      const batch = randomBatch(rng, V, soft);
      const [eo, et] = [await ort.evalLoss(batch, true), await tfjs.evalLoss(batch, true)];
      assert.ok(Math.abs(eo.lossSum - et.lossSum) < TOL * Math.abs(et.lossSum), `validation loss (soft ${soft})`);
      const [go, gt] = [await ort.lossAndGrads(batch, 0.25), await tfjs.lossAndGrads(batch, 0.25)];
      assert.ok(Math.abs(go.lossSum - gt.lossSum) < TOL * Math.abs(gt.lossSum), `training loss (soft ${soft})`);
      assert.ok(Math.abs(go.lossSum - eo.lossSum) < TOL * Math.abs(eo.lossSum), `training loss = validation loss (soft ${soft})`);
      assert.deepEqual([...go.grads.keys()].sort(), Object.keys(adapter.namedTensors()).sort());
      for (const [name, g] of gt.grads) assert.ok(relDiff(go.grads.get(name)!, g) < TOL, `gradient of ${name} (soft ${soft}): ${relDiff(go.grads.get(name)!, g)}`);
    }
    ort.dispose();
    tfjs.dispose();
  });
}

test("onnxruntime's LoRA gradients match central finite differences (every module, hard and soft targets)", async () => {
  const dir = writeTinyModel(path.join(tempDir(), "m"), { seed: 55, layers: 2, hidden: 16, heads: 4, kvHeads: 2, intermediate: 24 });
  const rt = await openModel(dir, { backend: "ort", forTraining: true });
  const adapter = LoraAdapter.create(rt.config, { r: 2, alpha: 4, targets: ALL_MODULES, seed: 3 });
  randomizeB(adapter, 9, 0.5);
  rt.prepareTraining(adapter);
  const ex = [1, 40, 51, 62, 73, 84, 2];
  const hard = makeBatch([{ ids: ex, lossMask: Uint8Array.from(ex.map((_, i) => (i > 2 ? 1 : 0))), truncated: false, line: 1 }], 0);
  const soft = { ...hard, soft: softRows(new Rng(4), hard.batch * hard.seqLen, rt.config.vocabSize) };
  let checked = 0;
  for (const batch of [hard, soft]) {
    const { grads } = await rt.lossAndGrads(batch, 1);
    for (const [name, t] of Object.entries(adapter.namedTensors())) {
      const g = grads.get(name)!;
      const i = Array.from(g.keys()).sort((a, b) => Math.abs(g[b]) - Math.abs(g[a]))[0]; // the largest entry (small ones drown in float32 noise)
      const fd = await adapterFiniteDifference(rt, adapter, batch, t.data, i);
      assert.ok(Math.abs(fd - g[i]) <= 0.03 * Math.abs(g[i]) + 2e-3, `${name}[${i}] (soft ${!!batch.soft}): hand-derived ${g[i]} vs finite difference ${fd}`);
      checked++;
    }
  }
  assert.equal(checked, 2 * 2 * 7 * 2);
  rt.dispose();
});

for (const backend of ENGINES) {
  test(`LoraAdapter.create starts as PEFT does: B zero (the tuned model is the base model, ${backend}), A uniform within ±1/√in`, async () => {
    const dir = writeTinyModel(path.join(tempDir(), "m"), { seed: 61, hidden: 32, intermediate: 48 });
    const rt = await openModel(dir, { backend });
    const adapter = LoraAdapter.create(rt.config, { targets: ALL_MODULES, seed: 1 });
    assert.equal(adapter.config.r, 8);
    assert.equal(adapter.config.alpha, 16);
    for (const p of adapter.pairs) {
      assert.ok(p.B.data.every((v) => v === 0), `B of ${p.module}`);
      const inp = p.A.shape[1];
      const bound = 1 / Math.sqrt(inp);
      assert.ok(p.A.data.every((v) => Math.abs(v) <= bound), `A of ${p.module} within ±1/√${inp}`);
      const std = Math.sqrt(p.A.data.reduce((s, v) => s + v * v, 0) / p.A.data.length);
      assert.ok(std > 0.45 * bound && std < 0.7 * bound, `A of ${p.module} spread like U(−b, b) (std ${std / bound} b)`);
      assert.ok(new Set(p.A.data).size > 0.99 * p.A.data.length, `A of ${p.module} not degenerate`);
    }
    // Each adapted linear gets its own A (rows differ between modules and layers).
    assert.notDeepEqual(adapter.pairs[0].A.data.slice(0, 8), adapter.pairs[1].A.data.slice(0, 8));
    rt.setAdapter(adapter);
    const ids = [1, 40, 51, 62, 73, 84, 95, 2];
    assert.ok(maxAbsDiff(await rt.tokenLogprobs(ids, true), await rt.tokenLogprobs(ids, false)) < 1e-6);
    rt.dispose();
  });
}

test("a LoRA adapter saves in PEFT's layout and loads back exactly", async () => {
  const root = tempDir();
  const dir = writeTinyModel(path.join(root, "m"), { seed: 62, layers: 3, kvHeads: 2 });
  const rt = await openModel(dir, { backend: "ort" });
  const c = rt.config;
  const adapter = LoraAdapter.create(c, { r: 4, alpha: 8, targets: ["q_proj", "v_proj", "down_proj"], layers: [0, 2], seed: 2, baseModel: "org/tiny", template: "alpaca" });
  randomizeB(adapter, 3);
  const out = path.join(root, "adapter");
  adapter.save(out);
  const json = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8"));
  assert.equal(json.peft_type, "LORA");
  assert.equal(json.r, 4);
  assert.equal(json.lora_alpha, 8);
  assert.deepEqual(json.target_modules, ["q_proj", "v_proj", "down_proj"]);
  assert.deepEqual(json.layers_to_transform, [0, 2]);
  assert.equal(json.base_model_name_or_path, "org/tiny");
  const header = readHeader(path.join(out, LORA_WEIGHTS));
  const cq = c.numHeads * c.headDim;
  const ckv = c.numKvHeads * c.headDim;
  const want: Record<string, number[]> = {};
  for (const l of [0, 2]) {
    want[`base_model.model.model.layers.${l}.self_attn.q_proj.lora_A.weight`] = [4, c.hiddenSize];
    want[`base_model.model.model.layers.${l}.self_attn.q_proj.lora_B.weight`] = [cq, 4];
    want[`base_model.model.model.layers.${l}.self_attn.v_proj.lora_A.weight`] = [4, c.hiddenSize];
    want[`base_model.model.model.layers.${l}.self_attn.v_proj.lora_B.weight`] = [ckv, 4];
    want[`base_model.model.model.layers.${l}.mlp.down_proj.lora_A.weight`] = [4, c.intermediateSize];
    want[`base_model.model.model.layers.${l}.mlp.down_proj.lora_B.weight`] = [c.hiddenSize, 4];
  }
  assert.deepEqual(Object.fromEntries(Object.entries(header.tensors).map(([n, t]) => [n, t.shape])), want);
  const back = loadAdapter(out, c);
  assert.equal(back.method, "lora");
  assert.ok(back instanceof LoraAdapter);
  assert.deepEqual({ ...back.config, extra: {} }, adapter.config);
  assert.equal(back.template, "alpaca");
  for (const [name, t] of Object.entries(adapter.namedTensors())) assert.deepEqual(back.namedTensors()[name].data, t.data, name);
  // A round trip again writes the same config.
  back.save(path.join(root, "again"));
  assert.equal(fs.readFileSync(path.join(root, "again", "adapter_config.json"), "utf8"), fs.readFileSync(path.join(out, "adapter_config.json"), "utf8"));
  rt.dispose();
});

test("a bad LoRA folder is a one-line error naming the file and the field", async () => {
  const root = tempDir();
  const dir = writeTinyModel(path.join(root, "m"), { seed: 63 });
  const rt = await openModel(dir, { backend: "ort" });
  const good = LoraAdapter.create(rt.config, { r: 2, seed: 1 });
  const folder = (name: string, edit: (cfg: Record<string, unknown>, tensors: Record<string, F32Tensor>) => void): string => {
    const out = path.join(root, name);
    good.save(out);
    const cfgFile = path.join(out, "adapter_config.json");
    const cfg = JSON.parse(fs.readFileSync(cfgFile, "utf8"));
    const header = readHeader(path.join(out, LORA_WEIGHTS));
    const tensors = Object.fromEntries(Object.keys(header.tensors).map((n) => [n, readTensorF32(header, n)]));
    edit(cfg, tensors);
    fs.writeFileSync(cfgFile, JSON.stringify(cfg));
    writeSafetensors(path.join(out, LORA_WEIGHTS), tensors);
    return out;
  };
  const fails = (dir: string, pattern: RegExp) =>
    assert.throws(() => loadAdapter(dir, rt.config), (e: Error) => {
      assert.ok(e instanceof ExcitorInputError, e.message);
      assert.ok(!e.message.includes("\n"), e.message);
      assert.match(e.message, pattern);
      return true;
    });
  const q0A = loraTensorName(0, "q_proj", "A");
  fails(folder("bad-r", (c) => (c.r = 0)), /adapter_config\.json: "r" must be a positive integer \(got 0\)/);
  fails(folder("bad-target", (c) => (c.target_modules = ["q_proj", "qkv"])), /adapter_config\.json: "target_modules": LoRA target "qkv" is not a LLaMA linear layer/);
  fails(folder("missing", (_, t) => delete t[q0A]), new RegExp(`adapter_model\\.safetensors: tensor ${q0A.replace(/\./g, "\\.")} is missing`));
  fails(folder("shape", (_, t) => (t[q0A] = { shape: [3, rt.config.hiddenSize], data: new Float32Array(3 * rt.config.hiddenSize) })), new RegExp(`adapter_model\\.safetensors: tensor ${q0A.replace(/\./g, "\\.")} has shape \\[3,${rt.config.hiddenSize}\\] but this model needs \\[2,${rt.config.hiddenSize}\\]`));
  // What the engine would otherwise drop without a word: trained tensors it does not use, and PEFT options it does not implement.
  fails(folder("extra", (_, t) => (t["base_model.model.lm_head.modules_to_save.default.weight"] = { shape: [1], data: new Float32Array(1) })), /adapter_model\.safetensors: holds 1 tensor adapter_config\.json's target_modules and layers does not use, e\.g\. base_model\.model\.lm_head/);
  fails(folder("modules-to-save", (c) => (c.modules_to_save = ["lm_head"])), /"modules_to_save" is \["lm_head"\]; fully trained copies of modules are not supported/);
  fails(folder("rank-pattern", (c) => (c.rank_pattern = { q_proj: 16 })), /"rank_pattern" is set/);
  // PEFT reads a string target_modules as a regular expression over whole module names: "q_proj" alone matches none.
  fails(folder("regex-none", (c) => (c.target_modules = "q_proj")), /"target_modules" "q_proj" matches no LLaMA linear layer/);
  fails(folder("regex-mixed", (c) => (c.target_modules = "model\\.layers\\.0\\.self_attn\\.q_proj|model\\.layers\\.1\\.self_attn\\.v_proj")), /selects different modules in different layers/);
  const regex = loadAdapter(folder("regex", (c) => (c.target_modules = ".*\\.(q_proj|v_proj)")), rt.config) as LoraAdapter;
  assert.deepEqual(regex.config.targets, ["q_proj", "v_proj"], "a regular expression as PEFT writes it for q and v");
  rt.dispose();
});
