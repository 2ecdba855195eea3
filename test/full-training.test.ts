/** Full-parameter training (how the demo model is pretrained; full fine-tuning on either engine): gradients, learning, and the model folder it writes. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { openModel } from "../engine/load";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { train, TRAIN_DEFAULTS } from "../engine/train/trainer";
import { ENGINES } from "./helpers/engines";
import { checkFullGradients } from "./helpers/finite-differences";
import { tempDir, writeTinyModel } from "./helpers/tiny-model";

test("full training: gradients of base weights (embedding, transposed linears, norms, head) match finite differences", async () => {
  const dir = writeTinyModel(path.join(tempDir(), "m"), { seed: 31, layers: 1, hidden: 16, heads: 2, kvHeads: 1, intermediate: 24 });
  const rt = await openModel(dir, { backend: "tfjs", forTraining: true });
  const names = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight", "model.layers.0.input_layernorm.weight", "model.norm.weight", "lm_head.weight"];
  await checkFullGradients(rt, names, false, "autodiff");
  rt.dispose();
});

for (const backend of ENGINES) test(`full training on text records lowers the loss and writes a loadable model folder (${backend})`, async () => {
  const root = tempDir();
  const base = writeTinyModel(path.join(root, "base"), { seed: 32, scale: 0.1 });
  const data = path.join(root, "text.jsonl");
  const lines = Array.from({ length: 16 }, (_, i) => JSON.stringify({ text: `the cat sat on the mat ${i % 4}.` }));
  fs.writeFileSync(data, lines.join("\n"));
  const rt = await openModel(base, { backend, forTraining: true });
  const tok = TextTokenizer.fromFolder(base);
  const losses: number[] = [];
  const out = path.join(root, "pretrained");
  const res = await train(rt, tok, {
    ...TRAIN_DEFAULTS, method: "full", dataFile: data, outDir: out, baseModel: base, epochs: 30, maxSteps: 30, batchSize: 8, microBatch: 8,
    learningRate: 3e-3, validationShare: 0, onEvent: (e) => e.type === "step" && losses.push(e.loss),
  });
  assert.equal(res.status, "done");
  assert.ok(losses.at(-1)! < losses[0] / 2, `loss ${losses[0]} -> ${losses.at(-1)}`);
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]) assert.ok(fs.existsSync(path.join(out, f)), f);
  assert.ok(!fs.existsSync(path.join(out, "adapter_model.safetensors")), "full training writes a model, not an adapter");
  // The written model computes what the trained one did (the trained weights, where the engine also keeps the base).
  const ids = tok.encode("the cat sat on the mat 1.", { eos: true });
  const trained = await rt.tokenLogprobs(ids, rt.keepsBaseInFullTraining);
  const reloaded = await openModel(out);
  const again = await reloaded.tokenLogprobs(ids, false);
  assert.ok(Array.from(again).every((v, i) => Math.abs(v - trained[i]) < 1e-4));
  const before = await openModel(base);
  const mean = (a: Float32Array) => a.reduce((s, v) => s + v, 0) / a.length;
  const baseLp = await before.tokenLogprobs(ids, false);
  assert.ok(mean(again) > mean(baseLp) + 1, "the trained model predicts its training text better");
  if (rt.keepsBaseInFullTraining) assert.ok(Array.from(await rt.tokenLogprobs(ids, false)).every((v, i) => Math.abs(v - baseLp[i]) < 1e-5), "the kept base is untouched");
  for (const r of [rt, reloaded, before]) r.dispose();
});
