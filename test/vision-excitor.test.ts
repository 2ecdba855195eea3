/**
 * The multimodal Excitor (spec § Multimodal) on both engines: the golden reference's log-probs
 * from its image features, a picture-less call equal to the text adapter, decoding with a cache,
 * the image's share of the prompt attention, onnxruntime's hand-derived gradients (image
 * projections included) against tfjs autodiff, and the adapter folder's vision block.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { openModel } from "../engine/load";
import { ExcitorAdapter } from "../engine/excitor/adapter";
import { VISION_TENSORS } from "../engine/excitor/config";
import { ExcitorInputError } from "../engine/errors";
import { writeSafetensors } from "../engine/formats/safetensors";
import { Rng } from "../engine/rng";
import { singleImage, type ImageFeatures, type ModelRuntime, type TrainBatch } from "../engine/runtime";
import { FIXTURES } from "./fixtures";
import { randomBatch } from "./helpers/batches";
import { maxAbsDiff, relDiff } from "./helpers/compare";
import { tempDir } from "./helpers/tiny-model";

const TOL = 1e-4;
const GOLDEN = path.join(FIXTURES, "golden", "vision");
const MODEL = path.join(FIXTURES, "golden", "gqa", "model");
const readJson = (f: string) => JSON.parse(fs.readFileSync(path.join(GOLDEN, f), "utf8"));
const features: number[][] = readJson("expected-features.json").features; // [Nv, Cv]
const expected: { ids: number[]; logprobs: number[] } = readJson("expected-excitor.json");
const goldenImage = (): ImageFeatures => singleImage(Float32Array.from(features.flat()), features.length, features[0].length);

/** Next-token log-probs of `ids` fed one token at a time through a decode session. */
async function decodeLogprobs(rt: ModelRuntime, ids: number[], image?: ImageFeatures): Promise<number[]> {
  const s = rt.startDecode(true, 1, image);
  const out: number[] = [];
  for (let i = 0; i + 1 < ids.length; i++) {
    const logits = await s.feed([ids[i]]);
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((a, x) => a + Math.exp(x - m), 0));
    out.push(logits[ids[i + 1]] - lse);
  }
  s.dispose();
  return out;
}

for (const backend of ["ort", "tfjs"] as const) {
  test(`${backend}: the golden multimodal case's log-probs within 1e-4 (scoring and decoding), and without the picture it is the text adapter`, async () => {
    const rt = await openModel(MODEL, { backend });
    const adapter = ExcitorAdapter.load(path.join(GOLDEN, "adapter"), rt.config);
    assert.deepEqual(adapter.config.vision, { encoder: "../encoder", featureLayer: -1, numTokens: 17, hiddenSize: 48 });
    rt.setAdapter(adapter);
    assert.ok(maxAbsDiff(await rt.tokenLogprobs(expected.ids, true, goldenImage()), expected.logprobs) < TOL, "scoring with the image");
    assert.ok(maxAbsDiff(await decodeLogprobs(rt, expected.ids, goldenImage()), expected.logprobs) < TOL, "decoding with the image");

    const withoutPicture = await rt.tokenLogprobs(expected.ids, true);
    assert.ok(maxAbsDiff(withoutPicture, expected.logprobs) > 0.1, "the picture changes the answer's log-probs");
    const text = new ExcitorAdapter({ ...adapter.config, vision: undefined }, adapter.layers);
    rt.setAdapter(text);
    assert.ok(maxAbsDiff(await rt.tokenLogprobs(expected.ids, true), withoutPicture) < 1e-6, "no picture: F is empty");
    assert.ok(maxAbsDiff(await rt.tokenLogprobs(expected.ids, true, goldenImage()), withoutPicture) < 1e-6, "a text adapter ignores a picture");
    rt.setAdapter(adapter);
    assert.ok(maxAbsDiff(await rt.tokenLogprobs(expected.ids, false, goldenImage()), await rt.tokenLogprobs(expected.ids, false)) === 0, "the base model cannot see the picture");

    const probs = await rt.attentionProbs(expected.ids, true, goldenImage());
    assert.ok(probs.image, "attention reports the image share");
    const M = expected.ids.length;
    for (let l = 0; l < rt.config.numLayers; l++) {
      const a: Float32Array | undefined = probs.image![l];
      if (!adapter.config.layers.includes(l)) {
        assert.equal(a, undefined, `layer ${l} has no adapter`);
        continue;
      }
      assert.equal(a!.length, M * 17);
      for (let q = 0; q < M; q++) {
        const share = a!.subarray(q * 17, (q + 1) * 17).reduce((s: number, x: number) => s + x, 0);
        assert.ok(share > 0 && share < 1, `layer ${l} token ${q}: the image takes part of the prompt attention (${share})`);
      }
    }
    rt.dispose();
  });
}

test("onnxruntime's gradients with pictures (image projections included) = tfjs autodiff within 1e-4 relative; a row without a picture trains as text", async () => {
  const [ort, tfjs] = [await openModel(MODEL, { backend: "ort", forTraining: true }), await openModel(MODEL, { backend: "tfjs", forTraining: true })];
  const adapter = ExcitorAdapter.load(path.join(GOLDEN, "adapter"), ort.config);
  ort.prepareTraining(adapter);
  tfjs.prepareTraining(adapter);
  const rng = new Rng(3);
  const base = randomBatch(rng, ort.config.vocabSize); // two rows
  const one = features.length * features[0].length;
  const data = new Float32Array(2 * one);
  data.set(features.flat(), 0);
  for (let i = one; i < 2 * one; i++) data[i] = rng.normal(); // ignored: row 1 has no picture
  const batch: TrainBatch = { ...base, image: { rows: 2, numTokens: 17, hidden: 48, data, present: Uint8Array.of(1, 0) } };
  const [go, gt] = [await ort.lossAndGrads(batch, 0.5), await tfjs.lossAndGrads(batch, 0.5)];
  assert.ok(Math.abs(go.lossSum - gt.lossSum) < TOL * Math.abs(gt.lossSum), "training loss");
  assert.deepEqual([...go.grads.keys()].sort(), [...gt.grads.keys()].sort());
  assert.ok(gt.grads.has(VISION_TENSORS.key) && gt.grads.has(VISION_TENSORS.value));
  for (const [name, g] of gt.grads) assert.ok(relDiff(go.grads.get(name)!, g) < TOL, `gradient of ${name}: ${relDiff(go.grads.get(name)!, g)}`);

  // Row 1's loss is the text adapter's: its features (random here) are masked out.
  const row1 = (b: TrainBatch): TrainBatch => ({ batch: 1, seqLen: b.seqLen, ids: b.ids.slice(b.seqLen), targets: b.targets.slice(b.seqLen), weights: b.weights.slice(b.seqLen) });
  const textLoss = (await ort.evalLoss(row1(batch), true)).lossSum;
  const both = (await ort.evalLoss(batch, true)).lossSum;
  const row0 = (await ort.evalLoss({ ...batch, batch: 1, ids: batch.ids.slice(0, batch.seqLen), targets: batch.targets.slice(0, batch.seqLen), weights: batch.weights.slice(0, batch.seqLen), image: { rows: 1, numTokens: 17, hidden: 48, data: data.slice(0, one), present: Uint8Array.of(1) } }, true)).lossSum;
  assert.ok(Math.abs(both - (row0 + textLoss)) < 1e-4 * Math.abs(both), "rows are independent and the picture-less row is text");

  // Without any picture the projections get no gradient, and the rest is the text adapter's.
  const noPics = await ort.lossAndGrads(base, 0.5);
  assert.ok(noPics.grads.get(VISION_TENSORS.key)!.every((x) => x === 0));
  const tfNoPics = await tfjs.lossAndGrads(base, 0.5);
  assert.ok(tfNoPics.grads.get(VISION_TENSORS.value)!.every((x) => x === 0));
  ort.dispose();
  tfjs.dispose();
});

test("a multimodal adapter saves and loads its vision block and projections; a missing projection or a bad block is a one-line error", async () => {
  const rt = await openModel(MODEL, { backend: "ort" });
  const vision = { encoder: "../enc", featureLayer: -2, numTokens: 17, hiddenSize: 48 };
  const made = ExcitorAdapter.create(rt.config, { numPrompts: 4, rank: 2, layers: [2, 3], seed: 1, vision });
  assert.deepEqual(made.vision!.key.shape, [64, 48]);
  const text = ExcitorAdapter.create(rt.config, { numPrompts: 4, rank: 2, layers: [2, 3], seed: 1 });
  assert.deepEqual(made.layers[0].prompts.data, text.layers[0].prompts.data, "the image projections are drawn after the text tensors");
  const std = Math.sqrt(made.vision!.key.data.reduce((s, x) => s + x * x, 0) / made.vision!.key.data.length);
  assert.ok(Math.abs(std - 1 / Math.sqrt(48)) < 0.02, `N(0, 1/Cv) init (std ${std})`);

  const dir = path.join(tempDir(), "adapter");
  made.save(dir);
  const json = JSON.parse(fs.readFileSync(path.join(dir, "adapter_config.json"), "utf8"));
  assert.deepEqual(json.vision, { encoder: "../enc", feature_layer: -2, num_tokens: 17, hidden_size: 48 });
  const back = ExcitorAdapter.load(dir, rt.config);
  assert.deepEqual(back.config.vision, vision);
  assert.deepEqual(back.vision!.value.data, made.vision!.value.data);
  assert.deepEqual(back.clone().vision!.key.data, made.vision!.key.data);

  const tensors = made.namedTensors();
  delete tensors[VISION_TENSORS.value];
  writeSafetensors(path.join(dir, "adapter_model.safetensors"), tensors);
  assert.throws(() => ExcitorAdapter.load(dir, rt.config), (e: Error) => e instanceof ExcitorInputError && /vision\.value\.weight is missing \(adapter_config\.json has a vision block\)/.test(e.message) && !e.message.includes("\n"));

  for (const [bad, msg] of [
    [{ ...json.vision, num_tokens: 0 }, /"vision\.num_tokens" must be a positive integer/],
    [{ ...json.vision, feature_layer: 1 }, /"vision\.feature_layer" must be a negative layer index/],
    [{ ...json.vision, encoder: 3 }, /"vision\.encoder" must be the path of a CLIP vision folder/],
    ["clip", /"vision" must be an object/],
  ] as const) {
    fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify({ ...json, vision: bad }));
    assert.throws(() => ExcitorAdapter.load(dir, rt.config), (e: Error) => e instanceof ExcitorInputError && msg.test(e.message), String(msg));
  }
  // A text adapter's file with the projections left in is refused (they would be silently unused).
  fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify({ ...json, vision: undefined }));
  writeSafetensors(path.join(dir, "adapter_model.safetensors"), made.namedTensors());
  assert.throws(() => ExcitorAdapter.load(dir, rt.config), /vision\.key\.weight/);
  rt.dispose();
});
