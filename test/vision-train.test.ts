/**
 * Multimodal training (spec § Multimodal): datasets name pictures, the trainer encodes each one
 * once, the image projections learn with the rest, and the answer comes to depend on the
 * picture. The encoder here is a stand-in with fixed features per file (the CLIP tower is
 * tested in vision-encoder.test.ts): what is under test is the trainer's use of it.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { readDataset } from "../engine/data/datasets";
import { alpacaPrompt } from "../engine/data/templates";
import { ExcitorInputError } from "../engine/errors";
import { ExcitorAdapter } from "../engine/excitor/adapter";
import { openModel } from "../engine/load";
import { Rng } from "../engine/rng";
import { singleImage } from "../engine/runtime";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import type { ImageEncoder } from "../engine/train/images";
import { RETAIN_NONE } from "../engine/train/retention";
import { train, TRAIN_DEFAULTS, type TrainOptions } from "../engine/train/trainer";
import { FIXTURES } from "./fixtures";
import { tempDir } from "./helpers/tiny-model";

const NV = 5;
const CV = 8;

/** Features drawn from the file's first byte (one distinct picture per byte); counts the pictures it encodes. */
class StandInEncoder implements ImageEncoder {
  readonly numTokens = NV;
  readonly hiddenSize = CV;
  encoded = 0;
  async featuresOf(files: string[]): Promise<Float32Array> {
    const out = new Float32Array(files.length * NV * CV);
    files.forEach((f, i) => {
      const bytes = fs.readFileSync(f);
      if (bytes.length === 0) throw new ExcitorInputError(`${f}: not a PNG or JPEG file`, f);
      const rng = new Rng(bytes[0]);
      for (let j = 0; j < NV * CV; j++) out[i * NV * CV + j] = 2 * rng.normal();
      this.encoded++;
    });
    return out;
  }
}

const model = path.join(FIXTURES, "stories260k/hf");

/** "Which one is in the picture: cat or dog?" answered from the picture alone (a.png: cat, b.png: dog). */
function pictureTask(root: string, n: number): string {
  fs.writeFileSync(path.join(root, "a.png"), "A");
  fs.writeFileSync(path.join(root, "b.png"), "B");
  const lines = Array.from({ length: n }, (_, i) =>
    JSON.stringify({ instruction: "<image>\nWhich one is in the picture: cat or dog?", output: i % 2 ? "dog" : "cat", image: i % 2 ? "b.png" : "a.png" }),
  );
  fs.writeFileSync(path.join(root, "pics.jsonl"), lines.join("\n") + "\n");
  return path.join(root, "pics.jsonl");
}

test("datasets: an image path is resolved from the dataset's folder and the <image> marker removed; a text record or a non-string image is refused with its line", () => {
  const root = tempDir();
  const file = path.join(root, "d.jsonl");
  fs.writeFileSync(
    file,
    [
      JSON.stringify({ instruction: "<image>\nWhat is it?", output: "A cat.", image: "pics/a.png" }),
      JSON.stringify({ messages: [{ role: "user", content: "Describe <image> please" }, { role: "assistant", content: "Red." }], image: "b.jpg" }),
      JSON.stringify({ instruction: "No picture <image> here", output: "ok" }),
    ].join("\n"),
  );
  const [a, c, t] = readDataset(file);
  assert.equal(a.kind === "alpaca" && a.instruction, "What is it?");
  assert.equal(a.kind !== "text" && a.image, path.join(root, "pics/a.png"));
  assert.equal(c.kind === "chat" && c.messages[0].content, "Describe please");
  assert.equal(c.kind !== "text" && c.image, path.join(root, "b.jpg"));
  assert.equal(t.kind === "alpaca" && t.instruction, "No picture <image> here", "a record without a picture keeps its text");
  for (const [rec, msg] of [
    [{ text: "story", image: "a.png" }, /d2\.jsonl:1: "image" belongs to Alpaca and chat records/],
    [{ instruction: "x", output: "y", image: 3 }, /d2\.jsonl:1: "image" must be the path of a PNG or JPEG file .* got number/],
    [{ instruction: "x", output: "y", image: "" }, /"image" must be .* got an empty string/],
  ] as const) {
    fs.writeFileSync(path.join(root, "d2.jsonl"), JSON.stringify(rec) + "\n");
    assert.throws(() => readDataset(path.join(root, "d2.jsonl")), (e: Error) => e instanceof ExcitorInputError && msg.test(e.message));
  }
});

test("training with pictures: each picture is encoded once for the whole run, the projections learn, the answer follows the picture, and the adapter names its encoder", async () => {
  const root = tempDir();
  const data = pictureTask(root, 16);
  const encoderDir = path.join(root, "clip");
  fs.mkdirSync(encoderDir);
  const rt = await openModel(model, { forTraining: true });
  const tok = TextTokenizer.fromFolder(model);
  const encoder = new StandInEncoder();
  const out = path.join(root, "out");
  const res = await train(rt, tok, {
    ...TRAIN_DEFAULTS,
    dataFile: data,
    outDir: out,
    epochs: 40,
    maxSteps: 60,
    batchSize: 8,
    microBatch: 8,
    learningRate: 4e-2,
    validationShare: 0,
    retain: RETAIN_NONE,
    baseModel: model,
    vision: { encoder, dir: encoderDir, featureLayer: -1 },
  });
  assert.equal(res.status, "done");
  assert.equal(encoder.encoded, 2, "two distinct pictures, encoded once over 60 steps");
  const saved = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8"));
  assert.deepEqual(saved.vision, { encoder: "../clip", feature_layer: -1, num_tokens: NV, hidden_size: CV });
  const adapter = ExcitorAdapter.load(out, rt.config);
  const init = ExcitorAdapter.create(rt.config, { numPrompts: 10, rank: 8, seed: 0, vision: adapter.config.vision });
  assert.notDeepEqual(adapter.vision!.key.data, init.vision!.key.data, "the image projections were trained");

  // The tuned model answers from the picture: log p(answer) with the right picture beats the wrong one.
  rt.setAdapter(adapter);
  const prompt = alpacaPrompt("Which one is in the picture: cat or dog?");
  const feats = await encoder.featuresOf([path.join(root, "a.png"), path.join(root, "b.png")]);
  const pic = (i: number) => singleImage(feats.slice(i * NV * CV, (i + 1) * NV * CV), NV, CV);
  const score = async (answer: string, i: number) => {
    const p = tok.encode(prompt, { bos: true });
    const ids = tok.encode(prompt + answer, { bos: true, eos: true });
    const lp = await rt.tokenLogprobs(ids, true, pic(i));
    return Array.from(lp.slice(p.length - 1)).reduce((a, b) => a + b, 0);
  };
  for (const [i, right, wrong] of [[0, "cat", "dog"], [1, "dog", "cat"]] as const)
    assert.ok((await score(right, i)) > (await score(wrong, i)) + 1, `picture ${i}: "${right}" is the likelier answer`);
  rt.dispose();
});

test("training with pictures: a missing or undecodable picture stops the run before training, naming the dataset line; pictures without --vision, or --vision without pictures, are refused", async () => {
  const root = tempDir();
  const data = pictureTask(root, 4);
  const rt = await openModel(model, { forTraining: true });
  const tok = TextTokenizer.fromFolder(model);
  const opts = (extra: Partial<TrainOptions>): TrainOptions => ({ ...TRAIN_DEFAULTS, dataFile: data, outDir: path.join(root, "out"), epochs: 1, validationShare: 0, retain: RETAIN_NONE, baseModel: model, ...extra });
  const vision = { encoder: new StandInEncoder(), dir: root, featureLayer: -1 };
  await assert.rejects(train(rt, tok, opts({})), /pics\.jsonl:1: the record names an image, but no image encoder was given; pass --vision DIR/);

  fs.rmSync(path.join(root, "b.png"));
  await assert.rejects(train(rt, tok, opts({ vision })), (e: Error) => e instanceof ExcitorInputError && /pics\.jsonl:2: image .*b\.png not found$/.test(e.message));
  fs.writeFileSync(path.join(root, "b.png"), "");
  await assert.rejects(train(rt, tok, opts({ vision })), (e: Error) => e instanceof ExcitorInputError && /pics\.jsonl:2: .*b\.png: not a PNG or JPEG file$/.test(e.message));
  assert.ok(!fs.existsSync(path.join(root, "out", "adapter_model.safetensors")), "nothing trained");

  const text = path.join(root, "text.jsonl");
  fs.writeFileSync(text, JSON.stringify({ instruction: "Hi", output: "Hello" }) + "\n");
  await assert.rejects(train(rt, tok, opts({ dataFile: text, vision })), /--vision: no record of .*text\.jsonl names an image/);
  await assert.rejects(train(rt, tok, opts({ method: "lora", vision })), /--vision: .* --method lora cannot use them/);
  rt.dispose();
});
