/**
 * The onnxruntime engine against the tfjs engine (the readable reference) on random tiny
 * models of every shape the loader accepts: the same log-probs, attention, validation loss
 * and Excitor gradients (hard and soft targets), and full fine-tuning's gradients of every weight
 * and the base it keeps. Plus which engine `auto` picks and what a missing GPU provider says.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { openModel } from "../engine/load";
import { ExcitorAdapter } from "../engine/excitor/adapter";
import { ExcitorInputError } from "../engine/errors";
import { Rng } from "../engine/rng";
import type { TrainBatch } from "../engine/runtime";
import { FIXTURES } from "./fixtures";
import { randomBatch, softRows } from "./helpers/batches";
import { maxAbsDiff, relDiff } from "./helpers/compare";
import { checkFullGradients } from "./helpers/finite-differences";
import { copyModelWith, tempDir, writeTinyModel, type TinyModelOptions } from "./helpers/tiny-model";

const TOL = 1e-4;

const CASES: { name: string; model: TinyModelOptions; layers: (n: number) => number[]; sliding?: number }[] = [
  { name: "MHA, every layer adapted", model: { hidden: 48, layers: 2, heads: 4, kvHeads: 4, seed: 21 }, layers: () => [0, 1] },
  { name: "GQA, top layers adapted, untied head", model: { hidden: 64, layers: 3, heads: 8, kvHeads: 2, intermediate: 80, seed: 22 }, layers: () => [1, 2] },
  { name: "Qwen2 q/k/v biases, tied embeddings", model: { hidden: 32, layers: 2, heads: 4, kvHeads: 1, qkvBias: 0.3, architecture: "Qwen2ForCausalLM", tieWordEmbeddings: true, seed: 23 }, layers: () => [1] },
  { name: "Mistral sliding window 4", model: { hidden: 32, layers: 2, heads: 4, kvHeads: 2, architecture: "MistralForCausalLM", seed: 24 }, layers: () => [0, 1], sliding: 4 },
];

for (const c of CASES) {
  test(`onnxruntime = tfjs (${c.name}): log-probs, attention, validation loss within 1e-4, Excitor gradients within 1e-4 relative`, async () => {
    const dir = writeTinyModel(path.join(tempDir(), "m"), c.model);
    if (c.sliding) {
      const file = path.join(dir, "config.json");
      fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), sliding_window: c.sliding }));
    }
    const ort = await openModel(dir, { backend: "ort", forTraining: true });
    const tfjs = await openModel(dir, { backend: "tfjs", forTraining: true });
    assert.match(ort.backend, /^onnxruntime-/);
    assert.match(tfjs.backend, /^tfjs-/);
    const adapter = ExcitorAdapter.create(ort.config, { numPrompts: 5, rank: 3, layers: c.layers(ort.config.numLayers), seed: 5 });
    const rng = new Rng(6);
    for (const l of adapter.layers) l.gate.data.forEach((_, i, g) => (g[i] = rng.normal() * 0.7)); // gates open, so every tensor gets gradient
    ort.prepareTraining(adapter);
    tfjs.prepareTraining(adapter);

    const V = ort.config.vocabSize;
    const ids = Array.from({ length: 12 }, () => 3 + rng.int(V - 3));
    for (const useAdapter of [false, true]) {
      const a = await ort.tokenLogprobs(ids, useAdapter);
      assert.ok(maxAbsDiff(a, await tfjs.tokenLogprobs(ids, useAdapter)) < TOL, `log-probs (adapter ${useAdapter})`);
    }
    assert.ok(maxAbsDiff(await ort.tokenLogprobs(ids, true), await ort.tokenLogprobs(ids, false)) > 1e-3, "the adapter moves the log-probs");

    const [ao, at] = [await ort.attentionProbs(ids, true), await tfjs.attentionProbs(ids, true)];
    for (let l = 0; l < ort.config.numLayers; l++) {
      assert.ok(maxAbsDiff(ao.tuned[l], at.tuned[l]) < TOL, `tuned attention, layer ${l}`);
      assert.ok(maxAbsDiff(ao.base[l], at.base[l]) < TOL, `base attention, layer ${l}`);
    }

    const batch = randomBatch(rng, V); // two right-padded rows, prompt tokens masked, uneven weights
    const [eo, et] = [await ort.evalLoss(batch, true), await tfjs.evalLoss(batch, true)];
    assert.equal(eo.tokens, et.tokens);
    assert.ok(Math.abs(eo.lossSum - et.lossSum) < TOL * Math.abs(et.lossSum));

    const [go, gt] = [await ort.lossAndGrads(batch, 0.25), await tfjs.lossAndGrads(batch, 0.25)];
    assert.ok(Math.abs(go.lossSum - gt.lossSum) < TOL * Math.abs(gt.lossSum), "training loss");
    assert.deepEqual([...go.grads.keys()].sort(), [...gt.grads.keys()].sort());
    for (const [name, g] of gt.grads) assert.ok(relDiff(go.grads.get(name)!, g) < TOL, `gradient of ${name}: ${relDiff(go.grads.get(name)!, g)}`);

    // Soft targets (the retention monitor's base distributions).
    const soft = { ...batch, soft: softRows(rng, batch.batch * batch.seqLen, V) };
    const [so, st] = [await ort.lossAndGrads(soft, 0.25), await tfjs.lossAndGrads(soft, 0.25)];
    assert.ok(Math.abs(so.lossSum - st.lossSum) < TOL * Math.abs(st.lossSum), "soft training loss");
    assert.ok(Math.abs((await ort.evalLoss(soft, true)).lossSum - st.lossSum) < TOL * Math.abs(st.lossSum), "soft validation loss");
    for (const [name, g] of st.grads) assert.ok(relDiff(so.grads.get(name)!, g) < TOL, `soft-target gradient of ${name}: ${relDiff(so.grads.get(name)!, g)}`);
    ort.dispose();
    tfjs.dispose();
  });
}

for (const name of ["mha", "gqa"]) {
  test(`onnxruntime = tfjs on the golden ${name} model and adapter: Excitor gradients within 1e-4 relative`, async () => {
    const dir = path.join(FIXTURES, "golden", name);
    const [ort, tfjs] = [await openModel(path.join(dir, "model"), { backend: "ort", forTraining: true }), await openModel(path.join(dir, "model"), { backend: "tfjs", forTraining: true })];
    const adapter = ExcitorAdapter.load(path.join(dir, "adapter"), ort.config);
    ort.prepareTraining(adapter);
    tfjs.prepareTraining(adapter);
    const ids: number[] = JSON.parse(fs.readFileSync(path.join(dir, "expected-excitor.json"), "utf8")).ids;
    const T = ids.length - 1;
    const batch: TrainBatch = { batch: 1, seqLen: T, ids: Int32Array.from(ids.slice(0, -1)), targets: Int32Array.from(ids.slice(1)), weights: Float32Array.from({ length: T }, (_, t) => (t < 3 ? 0 : 1)) };
    const [go, gt] = [await ort.lossAndGrads(batch, 1), await tfjs.lossAndGrads(batch, 1)];
    assert.ok(Math.abs(go.lossSum - gt.lossSum) < TOL * Math.abs(gt.lossSum));
    assert.equal(go.grads.size, 4 * adapter.layers.length);
    for (const [n, g] of gt.grads) assert.ok(relDiff(go.grads.get(n)!, g) < TOL, `gradient of ${n}`);
    ort.dispose();
    tfjs.dispose();
  });
}

test("auto runs the onnxruntime engine on the CPU here and says why no GPU provider runs; tfjs stays selectable", async () => {
  const dir = writeTinyModel(path.join(tempDir(), "m"), { seed: 2 });
  const rt = await openModel(dir);
  assert.equal(rt.backend, "onnxruntime-cpu");
  assert.match(rt.backendNote, /^onnxruntime [\d.]+ on the CPU, \d+ threads?/);
  if (process.platform === "linux") assert.match(rt.backendNote, /cuda not available \(libonnxruntime_providers_cuda\.so is not installed/);
  rt.dispose();
  const tfjs = await openModel(dir, { backend: "tfjs" });
  assert.match(tfjs.backend, /^tfjs-(wasm|tensorflow)/);
  tfjs.dispose();
});

test("where onnxruntime cannot load (a bundle without its native library), auto runs tfjs and says why", () => {
  // The bundled CLI finds onnxruntime's binding in ../bin beside it (scripts/bundle-assets.js); copied
  // alone, with only its wasm files, it has none: what a platform without a build sees.
  const bundle = path.resolve(__dirname, "../bundle");
  const alone = path.join(tempDir(), "bundle");
  fs.mkdirSync(alone);
  for (const f of fs.readdirSync(bundle)) if (f === "excitor.js" || f.endsWith(".wasm")) fs.copyFileSync(path.join(bundle, f), path.join(alone, f));
  const model = writeTinyModel(path.join(tempDir(), "m"), { seed: 2 });
  const r = spawnSync(process.execPath, [path.join(alone, "excitor.js"), "info", "--model", model, "--json"], { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { backend: string; backendNote: string };
  assert.equal(info.backend, "tfjs-wasm");
  assert.match(info.backendNote, /onnxruntime-node not usable \(Cannot find module '\.\.\/bin\/napi-v6\//);
});

test("asking for a GPU provider that is not there is a one-line error naming it and why", async () => {
  const dir = writeTinyModel(path.join(tempDir(), "m"), { seed: 2 });
  await assert.rejects(openModel(dir, { backend: "ort-cuda" }), (e: Error) => {
    assert.ok(e instanceof ExcitorInputError);
    assert.match(e.message, /^--backend: ort-cuda was requested but cuda not available \((lib)?onnxruntime_providers_cuda\.(so|dll) is not installed/);
    assert.ok(!e.message.includes("\n"));
    return true;
  });
});

test("soft targets that are one-hot rows give the hard targets' loss and gradients (onnxruntime, Excitor)", async () => {
  const rt = await openModel(writeTinyModel(path.join(tempDir(), "m"), { seed: 3, kvHeads: 1 }), { backend: "ort", forTraining: true });
  const adapter = ExcitorAdapter.create(rt.config, { numPrompts: 3, rank: 2, seed: 4 });
  const rng = new Rng(5);
  for (const l of adapter.layers) l.gate.data.forEach((_, i, g) => (g[i] = rng.normal()));
  rt.prepareTraining(adapter);
  const V = rt.config.vocabSize;
  const batch = randomBatch(rng, V);
  const oneHot = new Float32Array(batch.targets.length * V);
  batch.targets.forEach((t, i) => (oneHot[i * V + t] = 1));
  const [hard, soft] = [await rt.lossAndGrads(batch, 0.5), await rt.lossAndGrads({ ...batch, soft: oneHot }, 0.5)];
  assert.ok(Math.abs(hard.lossSum - soft.lossSum) < 1e-5 * Math.abs(hard.lossSum));
  for (const [name, g] of hard.grads) assert.ok(relDiff(soft.grads.get(name)!, g) < 1e-5, name);
  rt.dispose();
});

const FULL_CASES: { name: string; model: TinyModelOptions }[] = [
  { name: "GQA, untied head", model: { hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 40, seed: 71 } },
  { name: "MHA, Qwen2 q/k/v biases, tied embeddings", model: { hidden: 24, layers: 2, heads: 2, kvHeads: 2, qkvBias: 0.3, architecture: "Qwen2ForCausalLM", tieWordEmbeddings: true, seed: 72 } },
];

for (const c of FULL_CASES) {
  test(`full fine-tuning: onnxruntime's hand-derived gradients of every weight = tfjs autodiff within 1e-4 relative, hard and soft targets (${c.name})`, async () => {
    const dir = writeTinyModel(path.join(tempDir(), "m"), c.model);
    const ort = await openModel(dir, { backend: "ort", forTraining: true });
    const tfjs = await openModel(dir, { backend: "tfjs", forTraining: true });
    const [wo, wt] = [ort.beginFullTraining(), tfjs.beginFullTraining()];
    assert.deepEqual([...wo.keys()].sort(), [...wt.keys()].sort());
    for (const [name, t] of wt) assert.deepEqual(wo.get(name), t, `${name}: the same values in the checkpoint's layout`);
    assert.equal(wo.has("lm_head.weight"), !c.model.tieWordEmbeddings);
    const rng = new Rng(8);
    for (const soft of [false, true]) {
      const batch = randomBatch(rng, ort.config.vocabSize, soft);
      const [go, gt] = [await ort.lossAndGrads(batch, 0.25), await tfjs.lossAndGrads(batch, 0.25)];
      assert.ok(Math.abs(go.lossSum - gt.lossSum) < TOL * Math.abs(gt.lossSum), `training loss (soft ${soft})`);
      assert.deepEqual([...go.grads.keys()].sort(), [...wt.keys()].sort());
      for (const [name, g] of gt.grads) assert.ok(relDiff(go.grads.get(name)!, g) < TOL, `gradient of ${name} (soft ${soft}): ${relDiff(go.grads.get(name)!, g)}`);
    }
    ort.dispose();
    tfjs.dispose();
  });
}

test("full fine-tuning on onnxruntime: gradients match central finite differences (embedding, linears, biases, norms, head)", async () => {
  const dir = writeTinyModel(path.join(tempDir(), "m"), { seed: 73, layers: 2, hidden: 16, heads: 2, kvHeads: 1, intermediate: 24, qkvBias: 0.2, architecture: "Qwen2ForCausalLM" });
  const rt = await openModel(dir, { backend: "ort", forTraining: true });
  const names = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.bias", "model.layers.0.mlp.down_proj.weight", "model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight", "model.layers.1.self_attn.o_proj.weight", "model.norm.weight", "lm_head.weight"];
  await checkFullGradients(rt, names, true, "hand-derived");
  rt.dispose();
});

test("full fine-tuning on onnxruntime keeps the base: after setBaseWeights, useAdapter false is the base model and true the changed one, in every graph", async () => {
  const root = tempDir();
  const dir = writeTinyModel(path.join(root, "m"), { seed: 74, kvHeads: 2 });
  const rt = await openModel(dir, { backend: "ort", forTraining: true });
  assert.equal(rt.keepsBaseInFullTraining, true);
  const rng = new Rng(9);
  const ids = Array.from({ length: 9 }, () => 3 + rng.int(rt.config.vocabSize - 3));
  const rowIds = Int32Array.from(ids.slice(0, 8));
  const before = { lp: await rt.tokenLogprobs(ids, false), rows: await rt.logprobRows(rowIds, 2, 4, false), att: await rt.attentionProbs(ids, false) };
  const weights = rt.beginFullTraining();
  // Change every weight, as a training step would.
  const changed = new Map([...weights].map(([n, t]) => [n, t.data.map((v) => v * 1.1 + 0.01 * rng.normal())]));
  rt.setBaseWeights(changed);
  const other = await openModel(copyModelWith(dir, path.join(root, "changed"), (n, t) => ({ shape: t.shape, data: changed.get(n)! })), { backend: "ort" });

  assert.ok(maxAbsDiff(await rt.tokenLogprobs(ids, false), before.lp) < 1e-6, "base log-probs");
  assert.ok(maxAbsDiff(await rt.logprobRows(rowIds, 2, 4, false), before.rows) < 1e-6, "base rows");
  const att = await rt.attentionProbs(ids, false);
  for (let l = 0; l < rt.config.numLayers; l++) assert.ok(maxAbsDiff(att.tuned[l], before.att.tuned[l]) < 1e-6, `base attention ${l}`);
  const tuned = await rt.tokenLogprobs(ids, true);
  assert.ok(maxAbsDiff(tuned, before.lp) > 1e-3, "the change moves the log-probs");
  assert.ok(maxAbsDiff(tuned, await other.tokenLogprobs(ids, false)) < TOL, "trained log-probs");
  assert.ok(maxAbsDiff(await rt.logprobRows(rowIds, 2, 4, true), await other.logprobRows(rowIds, 2, 4, false)) < TOL, "trained rows");
  const [at, ao] = [await rt.attentionProbs(ids, true), await other.attentionProbs(ids, false)];
  for (let l = 0; l < rt.config.numLayers; l++) assert.ok(maxAbsDiff(at.tuned[l], ao.tuned[l]) < TOL, `trained attention ${l}`);
  for (const useAdapter of [false, true]) {
    const [d, ref] = [rt.startDecode(useAdapter), (useAdapter ? other : rt).startDecode(false)];
    for (const chunk of [ids.slice(0, 5), ids.slice(5)]) assert.ok(maxAbsDiff(await d.feed(chunk), await ref.feed(chunk)) < TOL, `decoding (adapter ${useAdapter})`);
    d.dispose();
    ref.dispose();
  }
  const batch = randomBatch(rng, rt.config.vocabSize);
  assert.ok(Math.abs((await rt.evalLoss(batch, true)).lossSum - (await other.evalLoss(batch, false)).lossSum) < 1e-3, "trained validation loss");
  assert.ok(Math.abs((await rt.lossAndGrads(batch, 1)).lossSum - (await other.evalLoss(batch, false)).lossSum) < 1e-3, "training runs on the trained weights");
  rt.dispose();
  other.dispose();
});

test("a token id outside the vocabulary is a one-line input error, not a kernel failure", async () => {
  const rt = await openModel(writeTinyModel(path.join(tempDir(), "m"), { seed: 2 }), { backend: "ort" });
  const V = rt.config.vocabSize;
  const message = (id: number) => (e: Error) => e instanceof ExcitorInputError && e.message === `token id ${id} is outside the model's vocabulary (vocab_size ${V} in config.json)`;
  await assert.rejects(rt.tokenLogprobs([1, 5, V + 3, 7], false), message(V + 3));
  await assert.rejects(rt.tokenLogprobs([1, 5, 7, V], false), message(V), "the last id is only a target, and is checked too");
  rt.dispose();
});
