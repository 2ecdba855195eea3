/**
 * The frozen image encoder of a multimodal adapter: a Hugging Face CLIP vision tower run on
 * the onnxruntime engine (clip-graph.ts) or on tfjs (clip-tfjs.ts). It turns image files into
 * features F [Nv, Cv] and remembers them: the tower is frozen, so an image seen once (same
 * path, size and modification time) is never encoded again, e.g. in a later training epoch.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type * as OrtModule from "onnxruntime-node";
import type * as tfc from "@tensorflow/tfjs";
import { initOrt, type OrtPreference } from "../backends/onnxruntime";
import { initTfjs, tf } from "../backends/tfjs";
import { ExcitorInputError } from "../errors";
import type { F32Tensor } from "../formats/safetensors";
import { WeightFiles } from "../model/weights";
import { buildClipGraph, CLIP_GRAPH_IO, VISION_PREFIX } from "./clip-graph";
import { clipForward, clipTensorShapes, layersFor, type ClipWeights } from "./clip-tfjs";
import { readPreprocessConfig, readVisionConfig, visionGrid, visionTokens, type PreprocessConfig, type VisionConfig } from "./config";
import { encodePng, readImage } from "./image";
import { normalizePixels, resizeAndCrop } from "./preprocess";

export type VisionEngine = "onnxruntime" | "tfjs";

export interface VisionEncoderOptions {
  engine: VisionEngine;
  /** Whose hidden state F is: -1 the last layer (default), -2 the one before it (LLaVA), ... */
  featureLayer?: number;
  /** onnxruntime's execution provider (default: a GPU where one is installed, else the CPU). */
  ortProvider?: OrtPreference;
  /** Most bytes of features kept in memory; past it the least recently used images are forgotten (default 4 GiB). */
  cacheBytes?: number;
}

/** Runs the tower: pixels [B, 3, S, S] -> features [B, Nv, Cv]. */
interface ClipRunner {
  run(pixels: Float32Array, batch: number): Promise<Float32Array>;
  dispose(): void;
}

const DEFAULT_CACHE_BYTES = 4 * 2 ** 30;

export class VisionEncoder {
  /** Features of images already encoded [Nv·Cv], by path + size + mtime; Map order is recency. */
  private readonly cache = new Map<string, Float32Array>();
  /** The cache key each path was last seen under, so a changed file's old features are dropped. */
  private readonly keyOfPath = new Map<string, string>();
  private cachedBytes = 0;
  private runs = 0;
  private encoded = 0;

  private constructor(
    readonly dir: string,
    readonly config: VisionConfig,
    private readonly preprocess: PreprocessConfig,
    readonly featureLayer: number,
    private readonly runner: ClipRunner,
    private readonly cacheLimit: number,
  ) {}

  static async load(dir: string, opts: VisionEncoderOptions): Promise<VisionEncoder> {
    const config = readVisionConfig(dir);
    const pre = readPreprocessConfig(dir);
    const S = config.imageSize;
    const preFile = path.join(dir, "preprocessor_config.json");
    if (pre.doCenterCrop && (pre.crop.height !== S || pre.crop.width !== S))
      throw new ExcitorInputError(`${preFile}: "crop_size" is ${pre.crop.height}x${pre.crop.width}, but the encoder (config.json "image_size") takes ${S}x${S} pictures`, preFile);
    if (!pre.doCenterCrop && pre.doResize && "height" in pre.size && (pre.size.height !== S || pre.size.width !== S))
      throw new ExcitorInputError(`${preFile}: "size" is ${pre.size.height}x${pre.size.width} without a center crop, but the encoder (config.json "image_size") takes ${S}x${S} pictures`, preFile);
    const featureLayer = opts.featureLayer ?? -1;
    const N = config.numLayers;
    if (!Number.isInteger(featureLayer) || featureLayer < -N || featureLayer > -1)
      throw new ExcitorInputError(
        `feature_layer is ${featureLayer}; the image encoder in ${dir} has ${N} layers, so it must be -1 (the last layer) to -${N} (the first), e.g. -2 as LLaVA uses`,
        path.join(dir, "config.json"),
      );
    const weights = readClipWeights(dir, config, featureLayer);
    const runner = opts.engine === "onnxruntime" ? await ortRunner(config, featureLayer, weights, opts.ortProvider) : await tfjsRunner(config, featureLayer, weights);
    const limit = opts.cacheBytes ?? DEFAULT_CACHE_BYTES;
    return new VisionEncoder(path.resolve(dir), config, pre, featureLayer, runner, limit);
  }

  /** Nv = 1 + G²: the class token and one per patch. */
  get numTokens(): number {
    return visionTokens(this.config);
  }
  /** Cv. */
  get hiddenSize(): number {
    return this.config.hiddenSize;
  }
  /** G = S / P: patches per side. */
  get grid(): number {
    return visionGrid(this.config);
  }
  /** S: the side of the picture the encoder takes. */
  get imageSize(): number {
    return this.config.imageSize;
  }
  get preprocessConfig(): PreprocessConfig {
    return this.preprocess;
  }
  /** How many times the tower has run (one run per featuresOf batch with an image not seen before). */
  get encoderRuns(): number {
    return this.runs;
  }
  /** How many images the tower has encoded. */
  get imagesEncoded(): number {
    return this.encoded;
  }

  /** pixels [B, 3, S, S], preprocessed -> F [B, Nv, Cv]: one run of the tower. */
  async encode(pixels: Float32Array, batch: number): Promise<Float32Array> {
    const S = this.imageSize;
    const per = 3 * S * S;
    if (!Number.isInteger(batch) || batch < 1) throw new Error(`VisionEncoder.encode: batch must be a positive integer, not ${batch}`);
    if (pixels.length !== batch * per)
      throw new Error(`VisionEncoder.encode: ${pixels.length} values for ${batch} image${batch > 1 ? "s" : ""}; the encoder takes [B, 3, ${S}, ${S}] = ${batch * per} (3 RGB channels of ${S}x${S})`);
    const out = await this.runner.run(pixels, batch);
    this.runs++;
    this.encoded += batch;
    return out;
  }

  /**
   * Features of image files, F [B, Nv, Cv] in the order given: images not seen before are
   * decoded, preprocessed and encoded in one run; the rest come from memory.
   */
  async featuresOf(files: string[]): Promise<Float32Array> {
    const per = this.numTokens * this.hiddenSize;
    const keys = files.map((f) => this.cacheKey(f));
    const missing = [...new Set(keys.filter((k) => !this.cache.has(k)))];
    const fresh = new Map<string, Float32Array>();
    if (missing.length) {
      const S = this.imageSize;
      const pixels = new Float32Array(missing.length * 3 * S * S);
      missing.forEach((k, i) => pixels.set(this.pixelsOf(files[keys.indexOf(k)]), i * 3 * S * S));
      const feats = await this.encode(pixels, missing.length);
      missing.forEach((k, i) => fresh.set(k, feats.slice(i * per, (i + 1) * per)));
    }
    const out = new Float32Array(files.length * per);
    keys.forEach((k, i) => {
      const f = fresh.get(k) ?? this.cache.get(k)!;
      out.set(f, i * per);
      this.remember(k, f);
    });
    return out;
  }

  /** The picture the encoder sees (resized, center-cropped, S×S) as a PNG, for the attention overlay. */
  cropPng(file: string): Buffer {
    return encodePng(this.prepared(file));
  }

  dispose(): void {
    this.runner.dispose();
    this.cache.clear();
    this.keyOfPath.clear();
    this.cachedBytes = 0;
  }

  private prepared(file: string) {
    const img = resizeAndCrop(readImage(file), this.preprocess);
    const S = this.imageSize;
    if (img.width !== S || img.height !== S) {
      const pre = path.join(this.dir, "preprocessor_config.json");
      throw new ExcitorInputError(`${file}: preprocessed to ${img.width}x${img.height} pixels (by ${pre}, which has no center crop), but the encoder takes ${S}x${S}`, file);
    }
    return img;
  }

  private pixelsOf(file: string): Float32Array {
    return normalizePixels(this.prepared(file), this.preprocess);
  }

  private cacheKey(file: string): string {
    const abs = path.resolve(file);
    let st: fs.Stats;
    try {
      st = fs.statSync(abs);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new ExcitorInputError(err.code === "ENOENT" ? `${file}: image not found` : `${file}: cannot read the image (${err.message})`, file);
    }
    if (!st.isFile()) throw new ExcitorInputError(`${file}: is not a file; an image must be a PNG or JPEG file`, file);
    const key = `${abs}\0${st.size}\0${st.mtimeMs}`;
    const old = this.keyOfPath.get(abs);
    if (old !== undefined && old !== key) this.forget(old); // the file changed: its old features are stale
    this.keyOfPath.set(abs, key);
    return key;
  }

  private remember(key: string, feats: Float32Array): void {
    if (this.cache.has(key)) this.cache.delete(key); // re-inserted below: most recently used last
    else this.cachedBytes += feats.byteLength;
    this.cache.set(key, feats);
    for (const k of this.cache.keys()) {
      if (this.cachedBytes <= this.cacheLimit || k === key) break;
      this.forget(k);
    }
  }

  private forget(key: string): void {
    const f = this.cache.get(key);
    if (!f) return;
    this.cache.delete(key);
    this.cachedBytes -= f.byteLength;
  }
}

/**
 * The tower's tensors up to the feature layer, by their names without `vision_model.`, as
 * CLIPVisionModel and CLIPModel save them (a CLIPModel's text tower and projections are ignored).
 */
function readClipWeights(dir: string, c: VisionConfig, featureLayer: number): Map<string, F32Tensor> {
  const files = WeightFiles.find(dir);
  const single = path.join(dir, "model.safetensors");
  const where = fs.existsSync(single) ? single : path.join(dir, "model.safetensors.index.json");
  const out = new Map<string, F32Tensor>();
  for (const [name, shape] of clipTensorShapes(c, layersFor(c, featureLayer))) {
    const full = VISION_PREFIX + name;
    if (!files.has(full)) throw new ExcitorInputError(`${where}: tensor "${full}" is missing; the image encoder needs it (is this a CLIP vision tower matching config.json?)`, where);
    out.set(name, files.read(full, shape));
  }
  return out;
}

async function ortRunner(c: VisionConfig, featureLayer: number, weights: Map<string, F32Tensor>, provider: OrtPreference = "auto"): Promise<ClipRunner> {
  const info = await initOrt(provider);
  const Tensor = info.ort.Tensor;
  const feeds: Record<string, OrtModule.Tensor> = {};
  for (const [name, t] of weights) feeds[VISION_PREFIX + name] = new Tensor("float32", t.data, t.shape);
  let session: OrtModule.InferenceSession | undefined = await info.ort.InferenceSession.create(buildClipGraph(c, featureLayer), info.sessionOptions);
  const S = c.imageSize;
  return {
    async run(pixels, batch) {
      if (!session) throw new Error("VisionEncoder: used after dispose()");
      const out = await session.run({ ...feeds, [CLIP_GRAPH_IO.pixels]: new Tensor("float32", pixels, [batch, 3, S, S]) }, [CLIP_GRAPH_IO.features]);
      return out[CLIP_GRAPH_IO.features].data as Float32Array;
    },
    dispose() {
      void session?.release().catch(() => undefined);
      session = undefined;
    },
  };
}

async function tfjsRunner(c: VisionConfig, featureLayer: number, weights: Map<string, F32Tensor>): Promise<ClipRunner> {
  await initTfjs("auto"); // the backend the language model runs on, when one is already chosen
  const w: ClipWeights = {};
  for (const [name, t] of weights) w[name] = tf.tensor(t.data, t.shape, "float32");
  const S = c.imageSize;
  let live = true;
  return {
    async run(pixels, batch) {
      if (!live) throw new Error("VisionEncoder: used after dispose()");
      const f = tf.tidy(() => clipForward(w, c, tf.tensor4d(pixels, [batch, 3, S, S]), featureLayer)) as tfc.Tensor3D;
      try {
        return (await f.data()) as Float32Array;
      } finally {
        f.dispose();
      }
    },
    dispose() {
      live = false;
      for (const t of Object.values(w)) t.dispose();
    },
  };
}
