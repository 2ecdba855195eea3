/** The multimodal demo's assets: its scenes, its instruction set and its image encoder. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type * as tfc from "@tensorflow/tfjs";
import { initTfjs, tf } from "../engine/backends/tfjs";
import { readDataset } from "../engine/data/datasets";
import { readHeader } from "../engine/formats/safetensors";
import { Rng } from "../engine/rng";
import { clipTensorShapes } from "../engine/vision/clip-tfjs";
import { readPreprocessConfig, readVisionConfig, visionTokens } from "../engine/vision/config";
import { VisionEncoder } from "../engine/vision/encoder";
import { readImage } from "../engine/vision/image";
import { imagePath, makeExamples, recordLine, VISION_SPLITS, type VisionRecord } from "../demo/vision/questions";
import { COLORS, POSITIONS, randomScene, SCENE_SIZE } from "../demo/vision/scenes";
import { registerTrainingKernels } from "../demo/vision/wasm-training-kernels";
import { tempDir } from "./helpers/tiny-model";

const repo = path.resolve(__dirname, "../..");
const DATA = path.join(repo, "demo", "vision", "data");
const ENCODER = path.join(repo, "demo", "vision", "encoder");

const readJsonl = (f: string): (VisionRecord & { image: string })[] => fs.readFileSync(f, "utf8").trim().split("\n").map((l) => JSON.parse(l));
const optionsOf = (r: VisionRecord): string[] => r.instruction.match(/: (.*)\?$/)![1].split(/, | or /).map((o) => o.replace(/^a /, ""));

test("vision demo data: the committed records and pictures are exactly what make-vision-data writes", () => {
  for (const split of VISION_SPLITS) {
    const file = path.join(DATA, `${split.name}.jsonl`);
    const lines = fs.readFileSync(file, "utf8").trim().split("\n");
    const examples = makeExamples(split.count, split.seed);
    assert.equal(lines.length, split.count);
    examples.forEach(({ record, scene }, i) => {
      assert.equal(lines[i], recordLine(record, imagePath(split.name, i)), `${split.name} line ${i + 1}`);
      const png = readImage(path.join(DATA, imagePath(split.name, i)));
      assert.deepEqual([png.width, png.height], [SCENE_SIZE, SCENE_SIZE]);
      assert.ok(Buffer.from(png.data).equals(Buffer.from(scene.pixels)), `${imagePath(split.name, i)} holds the scene's pixels`);
    });
    assert.equal(readDataset(file).length, split.count, "the engine reads it as Alpaca JSONL");
  }
  const pictures = fs.readdirSync(path.join(DATA, "images"));
  assert.equal(pictures.length, VISION_SPLITS.reduce((n, s) => n + s.count, 0), "no stray pictures");
});

test("vision demo data: every answer is a listed option, and without the picture guessing scores about a third", () => {
  const train = readJsonl(path.join(DATA, "train.jsonl"));
  const heldout = readJsonl(path.join(DATA, "heldout.jsonl"));
  for (const r of [...train, ...heldout]) {
    assert.ok(optionsOf(r).includes(r.answer), r.instruction);
    assert.ok(r.output.startsWith(" ") && r.output.endsWith(".") && r.output.split(/[ .]/).includes(r.answer), r.output);
  }
  assert.deepEqual([...new Set(heldout.map((r) => r.task))].sort(), ["color", "count", "place", "shape"]);
  // The text-only guessers a model could become: a fixed option slot, the most common answer to
  // the same question in training, the option most often right in training.
  const common = new Map<string, Map<string, number>>();
  const wins = new Map<string, number>();
  for (const r of train) {
    const m = common.get(r.instruction) ?? new Map<string, number>();
    common.set(r.instruction, m.set(r.answer, (m.get(r.answer) ?? 0) + 1));
    wins.set(r.answer, (wins.get(r.answer) ?? 0) + 1);
  }
  const guessers: Record<string, (r: VisionRecord) => string> = {
    "first option": (r) => optionsOf(r)[0],
    "second option": (r) => optionsOf(r)[1],
    "third option": (r) => optionsOf(r)[2],
    "same question's commonest answer": (r) => [...(common.get(r.instruction) ?? new Map([[optionsOf(r)[0], 1]]))].sort((a, b) => b[1] - a[1])[0][0],
    "option most often right": (r) => [...optionsOf(r)].sort((a, b) => (wins.get(b) ?? 0) - (wins.get(a) ?? 0))[0],
  };
  const fitted = new Set(["same question's commonest answer", "option most often right"]);
  for (const [name, guess] of Object.entries(guessers)) {
    for (const [split, rows, bound] of [["train", train, 0.36], ["held-out", heldout, 0.42]] as const) {
      if (split === "train" && fitted.has(name)) continue; // fitted on train: only held-out says what it knows
      const score = rows.filter((r) => guess(r) === r.answer).length / rows.length;
      assert.ok(score <= bound, `${name} scores ${score} on ${split} without the picture`);
    }
  }
});

test("vision demo scenes: seeded, and the ground truth is what the pixels show", () => {
  const a = randomScene(new Rng(3));
  assert.ok(Buffer.from(a.pixels).equals(Buffer.from(randomScene(new Rng(3)).pixels)), "same seed, same picture");
  const rng = new Rng(4);
  const base: Record<string, number[]> = { red: [215, 45, 40], green: [45, 175, 60], blue: [45, 85, 225], yellow: [230, 205, 45] };
  for (let n = 0; n < 300; n++) {
    const s = randomScene(rng);
    assert.equal(new Set(s.shapes.map((x) => x.kind)).size, s.shapes.length, "each kind at most once");
    assert.equal(new Set(s.shapes.map((x) => x.position)).size, s.shapes.length, "each place at most once");
    s.shapes.forEach((shape, i) => {
      let [sx, sy, count] = [0, 0, 0];
      const rgb = [0, 0, 0];
      for (let p = 0; p < SCENE_SIZE * SCENE_SIZE; p++)
        if (s.owner[p] === i) {
          sx += p % SCENE_SIZE;
          sy += Math.floor(p / SCENE_SIZE);
          count++;
          for (let c = 0; c < 3; c++) rgb[c] += s.pixels[p * 3 + c];
        }
      assert.ok(count >= 25, `the ${shape.kind} is drawn (${count} pixels)`);
      const [cx, cy] = [sx / count, sy / count];
      const where = { left: cx < 11, right: cx > 20, top: cy < 11, bottom: cy > 20 }[shape.position];
      assert.ok(where, `the ${shape.kind} on the ${shape.position} has its centre at (${cx.toFixed(1)}, ${cy.toFixed(1)})`);
      const mean = rgb.map((v) => v / count);
      const nearest = COLORS.reduce((best, c) => (dist(mean, base[c]) < dist(mean, base[best]) ? c : best));
      assert.equal(nearest, shape.color);
    });
  }
  assert.equal(POSITIONS.length, 4);
});

/** Ridge regression X W ≈ Y: W = (XᵀX + λI)⁻¹ XᵀY by Gauss-Jordan elimination. */
function ridge(X: number[][], Y: number[][], lambda: number): number[][] {
  const d = X[0].length;
  const k = Y[0].length;
  const A = Array.from({ length: d }, (_, i) => [
    ...Array.from({ length: d }, (_, j) => X.reduce((s, x) => s + x[i] * x[j], 0) + (i === j ? lambda : 0)),
    ...Array.from({ length: k }, (_, j) => X.reduce((s, x, r) => s + x[i] * Y[r][j], 0)),
  ]);
  for (let col = 0; col < d; col++) {
    const pivot = A.slice(col).reduce((best, row, i) => (Math.abs(row[col]) > Math.abs(A[best][col]) ? col + i : best), col);
    [A[col], A[pivot]] = [A[pivot], A[col]];
    const p = A[col][col];
    for (let j = 0; j < d + k; j++) A[col][j] /= p;
    for (let r = 0; r < d; r++) {
      if (r === col) continue;
      const f = A[r][col];
      if (f !== 0) for (let j = 0; j < d + k; j++) A[r][j] -= f * A[col][j];
    }
  }
  return A.map((row) => row.slice(d));
}

const dist = (a: number[], b: number[]) => a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0);

test("the demo image encoder is a small CLIPVisionModel folder the engine reads, and its features tell the pictures apart", async () => {
  await initTfjs("wasm");
  const size = fs.readdirSync(ENCODER).reduce((n, f) => n + fs.statSync(path.join(ENCODER, f)).size, 0);
  assert.ok(size < 400_000, `${size} bytes`);
  const c = readVisionConfig(ENCODER);
  const pre = readPreprocessConfig(ENCODER);
  assert.deepEqual([c.imageSize, c.patchSize, c.hiddenSize, c.numLayers, c.hiddenAct], [32, 8, 64, 2, "quick_gelu"]);
  assert.deepEqual(pre.crop, { height: 32, width: 32 });
  const names = Object.keys(readHeader(path.join(ENCODER, "model.safetensors")).tensors).sort();
  const expected = [...clipTensorShapes(c).keys(), "post_layernorm.weight", "post_layernorm.bias"].map((n) => `vision_model.${n}`).sort();
  assert.deepEqual(names, expected, "exactly CLIPVisionModel's tensors");

  // A linear read-out of the class token, fitted on the training set's count pictures, counts
  // the shapes of the held-out ones (the tower never saw either set).
  const encoder = await VisionEncoder.load(ENCODER, { engine: "tfjs" });
  const [N, C] = [encoder.numTokens, encoder.hiddenSize];
  assert.deepEqual([N, C], [visionTokens(c), 64]);
  const classTokens = async (rows: { image: string }[]): Promise<number[][]> => {
    const v = await encoder.featuresOf(rows.map((r) => path.join(DATA, r.image)));
    assert.equal(v.length, rows.length * N * C);
    assert.ok(v.every(Number.isFinite));
    return rows.map((_, b) => [...v.subarray(b * N * C, b * N * C + C), 1]);
  };
  const counts = ["one", "two", "three"];
  const fitRows = readJsonl(path.join(DATA, "train.jsonl")).filter((r) => r.task === "count");
  const testRows = readJsonl(path.join(DATA, "heldout.jsonl")).filter((r) => r.task === "count");
  const W = ridge(await classTokens(fitRows), fitRows.map((r) => counts.map((n) => (n === r.answer ? 1 : 0))), 1e-2);
  const predicted = (await classTokens(testRows)).map((x) => {
    const y = counts.map((_, k) => x.reduce((s, xi, i) => s + xi * W[i][k], 0));
    return counts[y.indexOf(Math.max(...y))];
  });
  const correct = predicted.filter((p, i) => p === testRows[i].answer).length;
  assert.ok(correct >= 0.9 * testRows.length, `${correct} of ${testRows.length} held-out pictures counted right`);
  encoder.dispose();
});

test("the wasm kernels the encoder's pretraining registers compute what the cpu backend does", async () => {
  await initTfjs("wasm");
  registerTrainingKernels();
  const convCases: [number | [number, number], "same" | "valid"][] = [[1, "same"], [2, "valid"], [[2, 3], "same"], [4, "valid"]];
  const mmCases: [number[], number[], boolean, boolean][] = [[[5, 7], [7, 3], false, false], [[7, 5], [7, 3], true, false], [[5, 7], [3, 7], false, true], [[7, 5], [3, 7], true, true], [[2, 3, 5, 4], [2, 3, 6, 4], false, true], [[2, 3, 4, 5], [2, 3, 4, 6], true, false]];
  const rnd = (shape: number[], seed: number) => { const r = new Rng(seed); return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.normal()), shape); };
  const run = () => [
    ...convCases.map(([s, p]) => tf.tidy(() => tf.grad((f) => tf.sum(tf.square(tf.conv2d(rnd([3, 10, 12, 3], 1) as tfc.Tensor4D, f as tfc.Tensor4D, s, p))))(rnd([3, 4, 3, 5], 2)).dataSync())),
    ...mmCases.map(([sa, sb, ta, tb]) => tf.tidy(() => tf.matMul(rnd(sa, 3), rnd(sb, 4), ta, tb).dataSync())),
  ];
  const wasm = run();
  await tf.setBackend("cpu");
  try {
    const cpu = run();
    cpu.forEach((ref, i) => ref.forEach((r, j) => assert.ok(Math.abs(r - wasm[i][j]) <= 1e-4 * (1 + Math.abs(r)), `case ${i}, value ${j}: ${wasm[i][j]} against ${r}`)));
  } finally {
    await tf.setBackend("wasm");
  }
});

test("npm run demo -- --vision: the tuned model answers from the picture, well above itself without it, and keeps its stories", () => {
  const out = path.join(tempDir(), "demo-vision");
  const r = spawnSync(process.execPath, [path.join(repo, "dist/demo/run.js"), "--vision", "--out", out], { encoding: "utf8", timeout: 1_200_000 });
  assert.equal(r.status, 0, r.stderr);
  for (const f of ["adapter_config.json", "adapter_model.safetensors", "metrics.jsonl", "report.md", "report.json"]) assert.ok(fs.existsSync(path.join(out, f)), f);
  const n = JSON.parse(fs.readFileSync(path.join(out, "report.json"), "utf8"));
  const { base, withPicture, withoutPicture } = n.exactMatch;
  assert.ok(base <= 0.05, `the base model cannot already do it: ${base}`);
  assert.ok(withPicture >= 0.25, `with the picture: ${withPicture}`);
  assert.ok(withPicture - withoutPicture >= 0.15, `the picture is used: ${withPicture} with it, ${withoutPicture} without`);
  assert.ok(n.exactMatchByTask.withPicture.shape >= 0.5, `shape questions: ${n.exactMatchByTask.withPicture.shape}`);
  assert.ok(n.storyPerplexity.ratio <= 1.1, `story perplexity x${n.storyPerplexity.ratio}`);
  const cfg = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8"));
  assert.equal(path.resolve(out, cfg.vision.encoder), path.join(repo, "demo", "vision", "encoder"), "the adapter names the demo tower");
  const report = fs.readFileSync(path.join(out, "report.md"), "utf8");
  assert.equal((report.match(/^\| !\[\]\(examples\/heldout-\d+\.png\) \|/gm) ?? []).length, 3, "three questions side by side with their pictures");
  for (const m of report.matchAll(/examples\/(heldout-\d+\.png)/g)) assert.ok(fs.existsSync(path.join(out, "examples", m[1])), m[1]);
});
