/**
 * The onnxruntime engine against the tfjs engine (the readable reference) on random tiny
 * models of every shape the loader accepts: the same log-probs, attention, validation loss
 * and Excitor gradients. Plus which engine `auto` picks and what a missing GPU provider says.
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
import { maxAbsDiff, relDiff } from "./helpers/compare";
import { tempDir, writeTinyModel, type TinyModelOptions } from "./helpers/tiny-model";

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

    // Two right-padded rows with prompt tokens masked, as the trainer makes them.
    const B = 2;
    const T = 9;
    const batch: TrainBatch = {
      batch: B,
      seqLen: T,
      ids: Int32Array.from({ length: B * T }, () => 3 + rng.int(V - 3)),
      targets: Int32Array.from({ length: B * T }, () => 3 + rng.int(V - 3)),
      weights: Float32Array.from({ length: B * T }, (_, i) => (i % T < 3 || i >= B * T - 2 ? 0 : 1)),
    };
    const [eo, et] = [await ort.evalLoss(batch, true), await tfjs.evalLoss(batch, true)];
    assert.equal(eo.tokens, et.tokens);
    assert.ok(Math.abs(eo.lossSum - et.lossSum) < TOL * Math.abs(et.lossSum));

    const [go, gt] = [await ort.lossAndGrads(batch, 0.25), await tfjs.lossAndGrads(batch, 0.25)];
    assert.ok(Math.abs(go.lossSum - gt.lossSum) < TOL * Math.abs(gt.lossSum), "training loss");
    assert.deepEqual([...go.grads.keys()].sort(), [...gt.grads.keys()].sort());
    for (const [name, g] of gt.grads) assert.ok(relDiff(go.grads.get(name)!, g) < TOL, `gradient of ${name}: ${relDiff(go.grads.get(name)!, g)}`);
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

test("full-parameter training is refused by the onnxruntime engine with where it runs", async () => {
  const rt = await openModel(writeTinyModel(path.join(tempDir(), "m"), { seed: 2 }), { backend: "ort" });
  assert.throws(() => rt.beginFullTraining(), /full-parameter training runs on the tfjs engine/);
  rt.dispose();
});

test("a token id outside the vocabulary is a one-line input error, not a kernel failure", async () => {
  const rt = await openModel(writeTinyModel(path.join(tempDir(), "m"), { seed: 2 }), { backend: "ort" });
  const V = rt.config.vocabSize;
  const message = (id: number) => (e: Error) => e instanceof ExcitorInputError && e.message === `token id ${id} is outside the model's vocabulary (vocab_size ${V} in config.json)`;
  await assert.rejects(rt.tokenLogprobs([1, 5, V + 3, 7], false), message(V + 3));
  await assert.rejects(rt.tokenLogprobs([1, 5, 7, V], false), message(V), "the last id is only a target, and is checked too");
  rt.dispose();
});
