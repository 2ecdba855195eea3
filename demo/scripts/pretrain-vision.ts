/**
 * Builds the multimodal demo's image encoder from nothing: a tiny CLIP vision tower (Hugging Face
 * CLIPVisionModel layout) pretrained on the demo's generated scenes (demo/vision/scenes.ts) with
 * the engine's own forward pass (engine/vision/clip-tfjs.ts), then written to demo/vision/encoder.
 *
 * CLIP learns from captions; the demo has no captions, so the tower learns from the scenes'
 * ground truth instead: linear heads on the pooled class token (CLIP's pooler: post_layernorm of
 * token 0) name how many shapes there are, where each kind is and what colour, and what sits at
 * each place; linear heads on every patch token name the shape and colour under that patch. The
 * heads are dropped at export. Excitor reads the last layer's tokens without post_layernorm, so
 * the patch heads read them as they are, and the report probes exactly those features.
 *
 *   npm run build && node dist/demo/scripts/pretrain-vision.js [--steps N] [--batch B] [--lr X] [--out DIR]
 *
 * After training it loads the written folder with the engine's VisionEncoder and fits fresh
 * linear probes on its features of other scenes (and, for comparison, on the untrained tower's),
 * measured on held-out scenes.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type * as tfc from "@tensorflow/tfjs";
import { initTfjs, tf } from "../../engine/backends/tfjs";
import { writeSafetensors, type F32Tensor } from "../../engine/formats/safetensors";
import { FEATURE_SCALE, scaleResidualStream } from "../vision/feature-scale";
import { writeFileAtomic } from "../../engine/fs-atomic";
import { Rng } from "../../engine/rng";
import { AdamW, ADAMW_DEFAULTS } from "../../engine/train/optimizer";
import { clipForward, clipTensorShapes, type ClipWeights } from "../../engine/vision/clip-tfjs";
import { parsePreprocessConfig, parseVisionConfig, visionGrid, type PreprocessConfig, type VisionConfig } from "../../engine/vision/config";
import { VisionEncoder } from "../../engine/vision/encoder";
import { normalizePixels } from "../../engine/vision/preprocess";
import type { JsonObject } from "../../engine/json-file";
import { COLORS, KINDS, POSITIONS, randomScene, SCENE_SIZE, type Scene } from "../vision/scenes";
import { registerTrainingKernels } from "../vision/wasm-training-kernels";

export const VISION_ARCH = { hidden: 64, layers: 2, heads: 4, intermediate: 128, image: SCENE_SIZE, patch: 8 };
const SEED = 21; // the training stream; probes draw from 22 (fit) and 23 (held out), the instruction set from 11 and 12
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const STEPS = Number(opt("--steps", "800"));
const BATCH = Number(opt("--batch", "64"));
const LR = Number(opt("--lr", "3e-3"));
const BACKEND = opt("--backend", "wasm") as "wasm" | "cpu";
const PROBE_FIT = 2000;
const PROBE_TEST = 1000;
const PROBE_STEPS = 200;
const repo = path.resolve(__dirname, "../../..");
const out = path.resolve(opt("--out", path.join(repo, "demo", "vision", "encoder")));

const CONFIG = {
  architectures: ["CLIPVisionModel"], model_type: "clip_vision_model", hidden_size: VISION_ARCH.hidden, intermediate_size: VISION_ARCH.intermediate,
  projection_dim: VISION_ARCH.hidden, num_hidden_layers: VISION_ARCH.layers, num_attention_heads: VISION_ARCH.heads, num_channels: 3,
  image_size: VISION_ARCH.image, patch_size: VISION_ARCH.patch, hidden_act: "quick_gelu", layer_norm_eps: 1e-5, attention_dropout: 0,
  initializer_range: 0.02, initializer_factor: 1, torch_dtype: "float32",
};
const PREPROCESSOR = {
  crop_size: { height: SCENE_SIZE, width: SCENE_SIZE }, do_center_crop: true, do_convert_rgb: true, do_normalize: true, do_rescale: true, do_resize: true,
  image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711], image_processor_type: "CLIPImageProcessor",
  resample: 3, rescale_factor: 1 / 255, size: { shortest_edge: SCENE_SIZE },
};

// ---- what the heads (and the probes) predict ----------------------------------------------

type Task = "count" | "color" | "shape" | "position";
interface Head {
  name: string;
  task: Task;
  classes: number;
  /** The class of a scene (global heads) or of one patch (patch heads); 0 is "none" except for count. */
  label: (s: Scene, patch: number) => number;
}

const NONE = 0;
const kindAt = (s: Scene, i: number) => (i < 0 ? NONE : 1 + KINDS.indexOf(s.shapes[i].kind));
const colorAt = (s: Scene, i: number) => (i < 0 ? NONE : 1 + COLORS.indexOf(s.shapes[i].color));
const indexOf = (s: Scene, f: (sh: Scene["shapes"][number]) => boolean) => s.shapes.findIndex(f);

const GLOBAL_HEADS: Head[] = [
  { name: "count", task: "count", classes: 3, label: (s) => s.shapes.length - 1 },
  ...KINDS.map((k): Head => ({ name: `place of the ${k}`, task: "position", classes: 1 + POSITIONS.length, label: (s) => { const i = indexOf(s, (x) => x.kind === k); return i < 0 ? NONE : 1 + POSITIONS.indexOf(s.shapes[i].position); } })),
  ...KINDS.map((k): Head => ({ name: `color of the ${k}`, task: "color", classes: 1 + COLORS.length, label: (s) => colorAt(s, indexOf(s, (x) => x.kind === k)) })),
  ...POSITIONS.map((p): Head => ({ name: `shape on the ${p}`, task: "shape", classes: 1 + KINDS.length, label: (s) => kindAt(s, indexOf(s, (x) => x.position === p)) })),
  ...POSITIONS.map((p): Head => ({ name: `color on the ${p}`, task: "color", classes: 1 + COLORS.length, label: (s) => colorAt(s, indexOf(s, (x) => x.position === p)) })),
];

/** The shape covering at least 8 of a patch's 64 pixels (the most, if two do), or -1. */
function patchOwner(s: Scene, patch: number, P = VISION_ARCH.patch): number {
  const G = SCENE_SIZE / P;
  const counts = new Array<number>(s.shapes.length).fill(0);
  const [gy, gx] = [Math.floor(patch / G), patch % G];
  for (let y = gy * P; y < (gy + 1) * P; y++) for (let x = gx * P; x < (gx + 1) * P; x++) if (s.owner[y * SCENE_SIZE + x] >= 0) counts[s.owner[y * SCENE_SIZE + x]]++;
  let best = -1;
  counts.forEach((n, i) => { if (n >= 8 && (best < 0 || n > counts[best])) best = i; });
  return best;
}

const PATCH_HEADS: Head[] = [
  { name: "shape under the patch", task: "shape", classes: 1 + KINDS.length, label: (s, p) => kindAt(s, patchOwner(s, p)) },
  { name: "color under the patch", task: "color", classes: 1 + COLORS.length, label: (s, p) => colorAt(s, patchOwner(s, p)) },
];

/** Whether a label counts in the reported accuracy: "none" answers are trained on but not scored (most places are empty). */
const scored = (h: Head, label: number) => h.task === "count" || label !== NONE;

// ---- tensors ---------------------------------------------------------------------------------

/** The engine's preprocessing (a picture already at crop size: rescale, normalise), NCHW. */
function pixelsOf(scenes: Scene[], pre: PreprocessConfig): tfc.Tensor4D {
  const S = SCENE_SIZE;
  const x = new Float32Array(scenes.length * 3 * S * S);
  scenes.forEach((s, b) => x.set(normalizePixels({ width: S, height: S, data: s.pixels }, pre), b * 3 * S * S));
  return tf.tensor4d(x, [scenes.length, 3, S, S]);
}

/** Labels [rows, heads] for the global heads (one row a scene) or the patch heads (one row a patch). */
function labelsOf(scenes: Scene[], heads: Head[], perPatch: boolean): Int32Array {
  const G2 = visionGrid(visionConfig()) ** 2;
  const rows = perPatch ? scenes.flatMap((s) => Array.from({ length: G2 }, (_, p) => [s, p] as const)) : scenes.map((s) => [s, 0] as const);
  const y = new Int32Array(rows.length * heads.length);
  rows.forEach(([s, p], r) => heads.forEach((h, j) => (y[r * heads.length + j] = h.label(s, p))));
  return y;
}

/** One-hot targets per head, [rows, classes], from labels [rows, heads]. */
function targetsOf(labels: Int32Array, heads: Head[]): tfc.Tensor2D[] {
  const rows = labels.length / heads.length;
  return heads.map((h, j) => tf.tidy(() => tf.oneHot(tf.tensor1d(Int32Array.from({ length: rows }, (_, r) => labels[r * heads.length + j]), "int32"), h.classes) as tfc.Tensor2D));
}

/** The heads' mean cross-entropies, averaged: logits [rows, Σ classes]. */
function headsLoss(logits: tfc.Tensor2D, targets: tfc.Tensor2D[], heads: Head[]): tfc.Scalar {
  const rows = logits.shape[0];
  let off = 0;
  const losses = heads.map((h, j) => {
    const lp = tf.logSoftmax(tf.slice(logits, [0, off], [rows, h.classes]));
    off += h.classes;
    return tf.neg(tf.mean(tf.sum(tf.mul(lp, targets[j]), 1)));
  });
  return tf.div(tf.addN(losses), heads.length) as tfc.Scalar;
}

/** Per head: correct and scored rows. */
function headsAccuracy(logits: tfc.Tensor2D, labels: Int32Array, heads: Head[]): { correct: number; total: number }[] {
  const [rows] = logits.shape;
  const v = logits.dataSync();
  const width = logits.shape[1];
  let off = 0;
  return heads.map((h, j) => {
    let correct = 0;
    let total = 0;
    for (let r = 0; r < rows; r++) {
      const y = labels[r * heads.length + j];
      if (!scored(h, y)) continue;
      let arg = 0;
      for (let k = 1; k < h.classes; k++) if (v[r * width + off + k] > v[r * width + off + arg]) arg = k;
      total++;
      if (arg === y) correct++;
    }
    off += h.classes;
    return { correct, total };
  });
}

function layerNorm(x: tfc.Tensor2D, w: tfc.Tensor, b: tfc.Tensor, eps: number): tfc.Tensor2D {
  const mean = tf.mean(x, -1, true);
  const centred = tf.sub(x, mean);
  return tf.add(tf.mul(tf.mul(centred, tf.rsqrt(tf.add(tf.mean(tf.square(centred), -1, true), eps))), w), b) as tfc.Tensor2D;
}

/** The config as the engine reads it (its own reader, so the tower trains on what the engine will see). */
const visionConfig = (): VisionConfig => parseVisionConfig(CONFIG as unknown as JsonObject);

// ---- the tower ---------------------------------------------------------------------------------

/** transformers' CLIP initialisation (_init_weights with factor 1). */
function initTower(c: VisionConfig, rng: Rng): Record<string, F32Tensor> {
  const C = c.hiddenSize;
  const t: Record<string, F32Tensor> = {};
  const normal = (std: number) => (shape: number[]): F32Tensor => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * std) });
  const fill = (v: number) => (shape: number[]): F32Tensor => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(v) });
  const inProj = C ** -0.5 * (2 * c.numLayers) ** -0.5;
  const std = (name: string): ((shape: number[]) => F32Tensor) => {
    if (name.endsWith(".bias")) return fill(0);
    if (/norm|layrnorm/.test(name)) return fill(1);
    if (name === "embeddings.class_embedding") return normal(C ** -0.5);
    if (name.startsWith("embeddings.")) return normal(0.02);
    if (name.endsWith("out_proj.weight")) return normal(C ** -0.5);
    if (name.endsWith("fc1.weight")) return normal((2 * C) ** -0.5);
    return normal(inProj); // q, k, v, fc2
  };
  const shapes = new Map([...clipTensorShapes(c), ["post_layernorm.weight", [C]], ["post_layernorm.bias", [C]]]);
  for (const [name, shape] of shapes) t[name] = std(name)(shape);
  return t;
}

const variables = (t: Record<string, F32Tensor>): ClipWeights => Object.fromEntries(Object.entries(t).map(([n, v]) => [n, tf.variable(tf.tensor(v.data, v.shape))]));

function fromTf(w: ClipWeights): Record<string, F32Tensor> {
  return Object.fromEntries(Object.entries(w).map(([n, v]) => [n, { shape: v.shape, data: Float32Array.from(v.dataSync()) }]));
}

/**
 * Variables trained with the engine's AdamW on host arrays (no weight decay: the tower is tiny and
 * sees fresh scenes every step).
 */
class Fit {
  private readonly opt = new AdamW({ ...ADAMW_DEFAULTS, weightDecay: 0 });
  private readonly host = new Map<string, Float32Array>();
  constructor(private readonly vars: tfc.Variable[]) {
    for (const v of vars) this.host.set(v.name, Float32Array.from(v.dataSync()));
  }

  /** One step on `loss`; returns its value. */
  step(loss: () => tfc.Scalar, lr: number): number {
    const { value, grads } = tf.variableGrads(loss, this.vars);
    const g = new Map(Object.entries(grads).map(([n, t]) => [n, t.dataSync() as Float32Array]));
    const l = value.dataSync()[0];
    tf.dispose([value, ...Object.values(grads)]);
    this.opt.update(this.host, g, lr, () => false);
    for (const v of this.vars) tf.tidy(() => v.assign(tf.tensor(this.host.get(v.name)!, v.shape)));
    return l;
  }
}

/** Linear heads, x [rows, Cv] -> logits [rows, Σ classes]. */
function makeHeads(heads: Head[], C: number, rng: Rng): { w: tfc.Variable; b: tfc.Variable } {
  const n = heads.reduce((a, h) => a + h.classes, 0);
  return { w: tf.variable(tf.tensor2d(Float32Array.from({ length: C * n }, () => rng.normal() * C ** -0.5), [C, n])), b: tf.variable(tf.zeros([n])) };
}

const apply = (x: tfc.Tensor2D, h: { w: tfc.Tensor; b: tfc.Tensor }) => tf.add(tf.matMul(x, h.w), h.b) as tfc.Tensor2D;

/** What the heads read: the pooled class token (CLIP's pooler) [B, Cv] and the patch tokens [B·G², Cv]. */
function features(w: ClipWeights, c: VisionConfig, pixels: tfc.Tensor4D): { cls: tfc.Tensor2D; patches: tfc.Tensor2D } {
  const F = clipForward(w, c, pixels, -1); // what Excitor reads: the last layer, no post_layernorm
  const [B, N, C] = F.shape;
  const token0 = tf.reshape(tf.slice(F, [0, 0, 0], [B, 1, C]), [B, C]) as tfc.Tensor2D;
  return {
    cls: layerNorm(token0, w["post_layernorm.weight"], w["post_layernorm.bias"], c.layerNormEps),
    patches: tf.reshape(tf.slice(F, [0, 1, 0], [B, N - 1, C]), [B * (N - 1), C]) as tfc.Tensor2D,
  };
}

// ---- training and probing ------------------------------------------------------------------------

function pretrain(c: VisionConfig, pre: PreprocessConfig): { tower: Record<string, F32Tensor>; finalLoss: number; seconds: number; cpuSeconds: number } {
  const cpu0 = process.cpuUsage();
  const rng = new Rng(SEED);
  const tower = variables(initTower(c, rng));
  const g = makeHeads(GLOBAL_HEADS, c.hiddenSize, rng);
  const p = makeHeads(PATCH_HEADS, c.hiddenSize, rng);
  const fit = new Fit([...(Object.values(tower) as tfc.Variable[]), g.w, g.b, p.w, p.b]);
  const warmup = Math.max(1, Math.round(STEPS * 0.05));
  const t0 = performance.now();
  let lastPrint = 0;
  let ema = NaN;
  for (let step = 1; step <= STEPS; step++) {
    const lr = step <= warmup ? (LR * step) / warmup : LR * 0.5 * (1 + Math.cos((Math.PI * (step - warmup)) / (STEPS - warmup)));
    const scenes = Array.from({ length: BATCH }, () => randomScene(rng));
    const gy = targetsOf(labelsOf(scenes, GLOBAL_HEADS, false), GLOBAL_HEADS);
    const py = targetsOf(labelsOf(scenes, PATCH_HEADS, true), PATCH_HEADS);
    const pixels = pixelsOf(scenes, pre);
    const l = fit.step(() => {
      const f = features(tower, c, pixels);
      return tf.add(headsLoss(apply(f.cls, g), gy, GLOBAL_HEADS), headsLoss(apply(f.patches, p), py, PATCH_HEADS)) as tfc.Scalar;
    }, lr);
    tf.dispose([pixels, ...gy, ...py]);
    ema = Number.isNaN(ema) ? l : 0.95 * ema + 0.05 * l;
    if (performance.now() - lastPrint > 10000 || step === STEPS) {
      lastPrint = performance.now();
      console.log(`step ${step}/${STEPS} loss ${ema.toFixed(3)} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
  }
  const result = fromTf(tower);
  tf.dispose([...Object.values(tower), g.w, g.b, p.w, p.b]);
  const cpu = process.cpuUsage(cpu0);
  return { tower: result, finalLoss: ema, seconds: (performance.now() - t0) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

interface ProbeResult {
  task: Task;
  readout: "class token" | "patch tokens";
  accuracy: number;
  chance: number;
}

/**
 * Fits fresh linear heads on the features of a tower folder as the engine's VisionEncoder gives
 * them to Excitor (the class token and the patch tokens, standardised with the fit set's
 * statistics) and scores them on held-out scenes; accuracy per task, over the heads of that task,
 * against always answering the fit set's most common class.
 */
async function probe(dir: string, fit: Scene[], test: Scene[]): Promise<ProbeResult[]> {
  const encoder = await VisionEncoder.load(dir, { engine: "tfjs" });
  const feats = async (scenes: Scene[]) => {
    const S = encoder.imageSize;
    const [N, C] = [encoder.numTokens, encoder.hiddenSize];
    const pixels = new Float32Array(scenes.length * 3 * S * S);
    scenes.forEach((s, b) => pixels.set(normalizePixels({ width: S, height: S, data: s.pixels }, encoder.preprocessConfig), b * 3 * S * S));
    const F = tf.tensor3d(await encoder.encode(pixels, scenes.length), [scenes.length, N, C]);
    const out = tf.tidy(() => ({
      cls: tf.reshape(tf.slice(F, [0, 0, 0], [scenes.length, 1, C]), [scenes.length, C]) as tfc.Tensor2D,
      patches: tf.reshape(tf.slice(F, [0, 1, 0], [scenes.length, N - 1, C]), [scenes.length * (N - 1), C]) as tfc.Tensor2D,
    }));
    F.dispose();
    return out;
  };
  const a = await feats(fit);
  const b = await feats(test);
  encoder.dispose();
  const results: ProbeResult[] = [];
  for (const [readout, heads, perPatch, key] of [["class token", GLOBAL_HEADS, false, "cls"], ["patch tokens", PATCH_HEADS, true, "patches"]] as const) {
    const xFit = a[key];
    const { mean, variance } = tf.moments(xFit, 0);
    const std = tf.sqrt(tf.add(variance, 1e-6));
    const norm = (x: tfc.Tensor2D) => tf.div(tf.sub(x, mean), std) as tfc.Tensor2D;
    const xa = norm(xFit);
    const xb = norm(b[key]);
    const ya = labelsOf(fit, heads, perPatch);
    const yb = labelsOf(test, heads, perPatch);
    const h = makeHeads(heads, xFit.shape[1], new Rng(24));
    const targets = targetsOf(ya, heads);
    const fitter = new Fit([h.w, h.b]);
    for (let i = 0; i < PROBE_STEPS; i++) fitter.step(() => headsLoss(apply(xa, h), targets, heads), 2e-2);
    const acc = tf.tidy(() => headsAccuracy(apply(xb, h), yb, heads));
    for (const task of ["count", "color", "shape", "position"] as Task[]) {
      const idx = heads.map((hd, j) => (hd.task === task ? j : -1)).filter((j) => j >= 0);
      if (!idx.length) continue;
      const correct = idx.reduce((s, j) => s + acc[j].correct, 0);
      const total = idx.reduce((s, j) => s + acc[j].total, 0);
      results.push({ task, readout, accuracy: correct / total, chance: majority(heads, idx, ya, yb) });
    }
    tf.dispose([mean, variance, std, xa, xb, h.w, h.b, ...targets]);
  }
  tf.dispose([a.cls, a.patches, b.cls, b.patches]);
  return results;
}

/** Accuracy on the test labels of always answering each head's most common scored class in the fit labels. */
function majority(heads: Head[], idx: number[], fit: Int32Array, test: Int32Array): number {
  let correct = 0;
  let total = 0;
  for (const j of idx) {
    const h = heads[j];
    const counts = new Array<number>(h.classes).fill(0);
    for (let r = j; r < fit.length; r += heads.length) if (scored(h, fit[r])) counts[fit[r]]++;
    const top = counts.indexOf(Math.max(...counts));
    for (let r = j; r < test.length; r += heads.length) {
      if (!scored(h, test[r])) continue;
      total++;
      if (test[r] === top) correct++;
    }
  }
  return correct / total;
}

/** A CLIPVisionModel folder: config, preprocessor config, and the tensors under `vision_model.`. */
function writeTower(dir: string, tower: Record<string, F32Tensor>): void {
  writeFileAtomic(path.join(dir, "config.json"), JSON.stringify(CONFIG, null, 2) + "\n");
  writeFileAtomic(path.join(dir, "preprocessor_config.json"), JSON.stringify(PREPROCESSOR, null, 2) + "\n");
  const scaled = scaleResidualStream(tower, FEATURE_SCALE); // why: demo/vision/feature-scale.ts
  writeSafetensors(path.join(dir, "model.safetensors"), Object.fromEntries(Object.entries(scaled).map(([n, t]) => [`vision_model.${n}`, t])), { format: "pt" });
}

async function main(): Promise<void> {
  const backend = await initTfjs(BACKEND);
  if (backend.name === "wasm") registerTrainingKernels();
  const c = visionConfig();
  const pre = parsePreprocessConfig(PREPROCESSOR as unknown as JsonObject);
  console.log(`pretraining the vision tower on ${backend.name}: ${STEPS} steps x ${BATCH} scenes, lr ${LR}`);
  const { tower, finalLoss, seconds, cpuSeconds } = pretrain(c, pre);
  writeTower(out, tower); // every file at the end, each atomically: an interrupted run leaves the previous tower whole

  const fitRng = new Rng(SEED + 1);
  const testRng = new Rng(SEED + 2);
  const fit = Array.from({ length: PROBE_FIT }, () => randomScene(fitRng));
  const test = Array.from({ length: PROBE_TEST }, () => randomScene(testRng));
  const tProbe = performance.now();
  const probes = await probe(out, fit, test); // the folder as written, read by the engine
  const untrained = fs.mkdtempSync(path.join(os.tmpdir(), "untrained-tower-"));
  let baseline: ProbeResult[];
  try {
    writeTower(untrained, initTower(c, new Rng(SEED)));
    baseline = await probe(untrained, fit, test);
  } finally {
    fs.rmSync(untrained, { recursive: true, force: true });
  }
  const rows = probes.map((r, i) => ({ ...r, untrained: baseline[i].accuracy }));
  console.log(`probes: ${((performance.now() - tProbe) / 1000).toFixed(0)} s`);
  const info = {
    arch: VISION_ARCH, steps: STEPS, batch: BATCH, lr: LR, backend: backend.name, seconds: Math.round(seconds), cpuSeconds: Math.round(cpuSeconds), finalLoss: Number(finalLoss.toFixed(4)),
    probeScenes: { fit: PROBE_FIT, heldout: PROBE_TEST }, probes: rows.map((r) => ({ task: r.task, readout: r.readout, accuracy: round(r.accuracy), untrained: round(r.untrained), majority: round(r.chance) })),
    cpu: os.cpus()[0]?.model, cores: os.cpus().length,
  };
  writeFileAtomic(path.join(out, "pretraining.json"), JSON.stringify(info, null, 2) + "\n");
  writeFileAtomic(path.join(out, "README.md"), readme(info, rows));
  console.log(JSON.stringify(info.probes));
}

const round = (x: number) => Number(x.toFixed(3));
const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

function readme(info: { seconds: number; cpuSeconds: number; finalLoss: number; cpu?: string; cores: number; backend: string }, rows: (ProbeResult & { untrained: number })[]): string {
  const { hidden, layers, heads, intermediate, image, patch } = VISION_ARCH;
  return `# The Excitor demo image encoder

A tiny CLIP vision tower (\`CLIPVisionModel\`: ${image}×${image} pictures in ${patch}×${patch} patches, so ${(image / patch) ** 2} patch
tokens and a class token; hidden ${hidden}, ${layers} layers, ${heads} heads, MLP ${intermediate}, quick_gelu) made by this
repository from nothing for the multimodal demo. It has seen only the demo's generated scenes
(\`demo/vision/scenes.ts\`): one to three squares, circles and triangles, red, green, blue or yellow,
on the left, right, top or bottom of a dark picture.

| | |
|---|---|
| pretraining | ${STEPS} steps of ${BATCH} fresh scenes, the engine's AdamW without weight decay, peak lr ${LR}, warmup then cosine, the engine's forward pass (\`engine/vision/clip-tfjs.ts\`) on tfjs ${info.backend} |
| objective | linear heads, dropped at export: on the pooled class token (post_layernorm), how many shapes, where each kind is and its colour, which kind and colour is at each place; on each patch token of the last layer, the kind and colour of the shape under it |
| time | ${info.seconds} s (${info.cpuSeconds} s of CPU time; the machine is shared with other work) on ${info.cores} cores (${info.cpu}); final loss (running mean) ${info.finalLoss.toFixed(3)} |

Linear probes fitted on the frozen features Excitor reads (last layer, no post_layernorm) of
${PROBE_FIT} scenes and scored on ${PROBE_TEST} others; "none" answers (an empty place, an absent kind, an
empty patch) are trained on but not scored:

| task | readout | trained tower | untrained tower | most common answer |
|---|---|---|---|---|
${rows.map((r) => `| ${r.task} | ${r.readout} | **${pct(r.accuracy)}** | ${pct(r.untrained)} | ${pct(r.chance)} |`).join("\n")}

Rebuild it: \`npm run build && node dist/demo/scripts/pretrain-vision.js\` (writes this folder,
\`pretraining.json\` with the numbers, and this README).
`;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
