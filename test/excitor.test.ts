/** The spec's facts about Excitor, each checked on a tiny model the test writes itself. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { openModel } from "../engine/load";
import { ExcitorAdapter } from "../engine/excitor/adapter";
import { tensorName, defaultLayers } from "../engine/excitor/config";
import { ExcitorInputError } from "../engine/errors";
import { makeBatch } from "../engine/train/batches";
import { Rng } from "../engine/rng";
import { adapterFiniteDifference } from "./helpers/finite-differences";
import { ENGINES } from "./helpers/engines";
import { tempDir, writeTinyModel } from "./helpers/tiny-model";

const ids = [1, 40, 51, 62, 73, 84, 95, 44, 45, 46, 2];

for (const backend of ENGINES) {
  test(`with every gate at 0 the adapted model's log-probs equal the base model's exactly on ${backend}`, async () => {
    const dir = writeTinyModel(path.join(tempDir(), "m"), { seed: 3 });
    const rt = await openModel(dir, { backend });
    const adapter = ExcitorAdapter.create(rt.config, { numPrompts: 5, rank: 4, seed: 1 });
    rt.setAdapter(adapter);
    const base = await rt.tokenLogprobs(ids, false);
    const tuned = await rt.tokenLogprobs(ids, true);
    assert.deepEqual(Array.from(tuned), Array.from(base));
    // ...and a non-zero gate does change them (the comparison above can fail).
    adapter.layers[0].gate.data.fill(0.5);
    rt.setAdapter(adapter);
    const moved = await rt.tokenLogprobs(ids, true);
    assert.notDeepEqual(Array.from(moved), Array.from(base));
    rt.dispose();
  });
}

test("adapter init follows the spec: shapes, N(0,1) prompts, scaled down/up, zero gates, default layers", async () => {
  const dir = writeTinyModel(path.join(tempDir(), "m"), { hidden: 64, heads: 4, kvHeads: 2, layers: 2 });
  const rt = await openModel(dir);
  const a = ExcitorAdapter.create(rt.config, { numPrompts: 30, rank: 16, seed: 7 });
  assert.deepEqual(a.config.layers, [0, 1]);
  assert.deepEqual(defaultLayers(32), Array.from({ length: 30 }, (_, i) => i + 2), "LLaMA-7B: top 30 of 32");
  const l = a.layers[0];
  assert.deepEqual([l.prompts.shape, l.down.shape, l.up.shape, l.gate.shape], [[30, 64], [16, 64], [64, 16], [4]]);
  const std = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
  assert.ok(Math.abs(std(l.prompts.data) - 1) < 0.1);
  assert.ok(Math.abs(std(l.down.data) - 1 / 8) < 0.02);
  assert.ok(Math.abs(std(l.up.data) - 1 / 4) < 0.03);
  assert.ok(l.gate.data.every((g) => g === 0));
  rt.dispose();
});

for (const backend of ENGINES) {
  test(`cold start: with gates at 0 only the gates receive gradient on ${backend}`, async () => {
    const dir = writeTinyModel(path.join(tempDir(), "m"), { seed: 4 });
    const rt = await openModel(dir, { backend, forTraining: true });
    const adapter = ExcitorAdapter.create(rt.config, { numPrompts: 4, rank: 3, seed: 2 });
    rt.prepareTraining(adapter);
    const batch = makeBatch([{ ids, lossMask: Uint8Array.from(ids.map((_, i) => (i > 4 ? 1 : 0))), truncated: false, line: 1 }], 0);
    const { grads } = await rt.lossAndGrads(batch, 1);
    for (const l of adapter.config.layers) {
      for (const part of ["prompts", "down.weight", "up.weight"] as const) assert.ok(grads.get(tensorName(l, part))!.every((g) => g === 0), `${part} of layer ${l}`);
      assert.ok(grads.get(tensorName(l, "gate"))!.some((g) => Math.abs(g) > 1e-6), `gate of layer ${l}`);
    }
    rt.dispose();
  });
}

for (const backend of ENGINES) {
  test(`gradients of every Excitor tensor match central finite differences on ${backend}`, async () => {
    const dir = writeTinyModel(path.join(tempDir(), "m"), { seed: 5, layers: 2, hidden: 16, heads: 4, kvHeads: 2, intermediate: 24 });
    const rt = await openModel(dir, { backend, forTraining: true });
    const adapter = ExcitorAdapter.create(rt.config, { numPrompts: 3, rank: 2, seed: 3 });
    const rng = new Rng(9);
    for (const l of adapter.layers) l.gate.data.forEach((_, i, g) => (g[i] = rng.normal()));
    rt.prepareTraining(adapter);
    const ex = [1, 40, 51, 62, 73, 84, 2];
    const batch = makeBatch([{ ids: ex, lossMask: Uint8Array.from(ex.map((_, i) => (i > 2 ? 1 : 0))), truncated: false, line: 1 }], 0);
    const { grads } = await rt.lossAndGrads(batch, 1);
    let checked = 0;
    for (const [name, t] of Object.entries(adapter.namedTensors())) {
      const g = grads.get(name)!;
      // The three largest entries of each tensor (small ones drown in float32 noise).
      const top = Array.from(g.keys()).sort((a, b) => Math.abs(g[b]) - Math.abs(g[a])).slice(0, 3);
      for (const i of top) {
        const fd = await adapterFiniteDifference(rt, adapter, batch, t.data, i);
        assert.ok(Math.abs(fd - g[i]) <= 0.03 * Math.abs(g[i]) + 2e-3, `${name}[${i}]: autodiff ${g[i]} vs finite difference ${fd}`);
        checked++;
      }
    }
    assert.equal(checked, 3 * 4 * adapter.layers.length);
    rt.dispose();
  });
}

test("save -> load round-trips bit for bit, and saving again writes the same bytes", async () => {
  const root = tempDir();
  const dir = writeTinyModel(path.join(root, "m"));
  const rt = await openModel(dir);
  const a = ExcitorAdapter.create(rt.config, { numPrompts: 6, rank: 3, layers: [1], seed: 11, extra: { template: "alpaca" } });
  a.layers[0].gate.data.set([0.1, -0.2, 0.3, 1e-30]);
  a.save(path.join(root, "a1"));
  const b = ExcitorAdapter.load(path.join(root, "a1"), rt.config);
  assert.deepEqual(b.config, a.config);
  for (const [name, t] of Object.entries(a.namedTensors())) {
    const u = b.namedTensors()[name];
    assert.deepEqual(u.shape, t.shape);
    assert.ok(Buffer.from(u.data.buffer).equals(Buffer.from(t.data.buffer)), name);
  }
  b.save(path.join(root, "a2"));
  for (const f of ["adapter_model.safetensors", "adapter_config.json"])
    assert.ok(fs.readFileSync(path.join(root, "a1", f)).equals(fs.readFileSync(path.join(root, "a2", f))), f);
  rt.dispose();
});

test("an adapter made for another model is refused, naming the tensor and both shapes", async () => {
  const root = tempDir();
  const small = await openModel(writeTinyModel(path.join(root, "small"), { hidden: 32 }));
  const big = await openModel(writeTinyModel(path.join(root, "big"), { hidden: 48, heads: 4, kvHeads: 2 }));
  ExcitorAdapter.create(small.config, { numPrompts: 4, rank: 2, seed: 1 }).save(path.join(root, "a"));
  assert.throws(
    () => ExcitorAdapter.load(path.join(root, "a"), big.config),
    (e: unknown) => e instanceof ExcitorInputError && /layers\.0\.self_attn\.excitor\.prompts has shape \[4,32\] but this model needs \[4,48\]/.test(e.message),
  );
  const deep = await openModel(writeTinyModel(path.join(root, "one"), { layers: 1 }));
  assert.throws(() => ExcitorAdapter.load(path.join(root, "a"), deep.config), /lists layer 1, but the model has 1 layers/);
  for (const rt of [small, big, deep]) rt.dispose();
});
