/**
 * A CLIP vision tower's shape (`config.json`) and its image preprocessing
 * (`preprocessor_config.json`), read as transformers' CLIPVisionConfig and CLIPImageProcessor
 * read them: a missing field takes transformers' default, a wrong one is a one-line input error
 * naming the file and the field.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError } from "../errors";
import { isJsonObject, jsonType, readJsonObject, type JsonObject } from "../json-file";

export type VisionActivation = "quick_gelu" | "gelu";
export const SUPPORTED_VISION_ACTIVATIONS: readonly VisionActivation[] = ["quick_gelu", "gelu"];

export interface VisionConfig {
  /** Cv: width of the features. */
  hiddenSize: number;
  /** MLP inner width (fc1's output). */
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Cv / heads. */
  headDim: number;
  /** P: side of one patch, in pixels. */
  patchSize: number;
  /** S: side of the (square) input picture, in pixels. */
  imageSize: number;
  numChannels: number;
  hiddenAct: VisionActivation;
  layerNormEps: number;
}

/** G = S / P patches per side; Nv = 1 + G² tokens (the class token first). */
export const visionGrid = (c: VisionConfig): number => c.imageSize / c.patchSize;
export const visionTokens = (c: VisionConfig): number => 1 + visionGrid(c) ** 2;

/** CLIPImageProcessor's fields, defaults filled in. */
export interface PreprocessConfig {
  /** Resize target: the shortest edge, or an exact height × width. */
  size: { shortestEdge: number } | { height: number; width: number };
  crop: { height: number; width: number };
  doResize: boolean;
  doCenterCrop: boolean;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  /** Read for completeness: images are always converted to RGB (the encoder takes 3 channels; without it transformers fails on greyscale). */
  doConvertRgb: boolean;
}

/** transformers' OPENAI_CLIP_MEAN / OPENAI_CLIP_STD, CLIPImageProcessor's defaults. */
const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];
/** PIL's Image.BICUBIC: the only resampling filter implemented (every CLIP checkpoint uses it). */
const PIL_BICUBIC = 3;

type Fail = (field: string, msg: string) => never;

function failer(file: string): Fail {
  return (field, msg) => {
    throw new ExcitorInputError(`${file}: "${field}" ${msg}`, file);
  };
}

export function readVisionConfig(dir: string): VisionConfig {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new ExcitorInputError(`${dir}: image encoder folder not found`, dir);
  const file = path.join(dir, "config.json");
  if (!fs.existsSync(file)) throw new ExcitorInputError(`${file}: not found; an image encoder folder needs a Hugging Face CLIP config.json`, file);
  return parseVisionConfig(readJsonObject(file), file);
}

export function parseVisionConfig(json: JsonObject, file = "config.json"): VisionConfig {
  const fail = failer(file);
  let c = json;
  let prefix = "";
  if (json.model_type === "clip") {
    // CLIPModel: the vision tower's fields sit under vision_config.
    if (json.vision_config == null) fail("vision_config", `is missing; a "clip" config.json needs one for the vision tower`);
    if (!isJsonObject(json.vision_config)) fail("vision_config", `must be an object, not ${jsonType(json.vision_config)}`);
    c = json.vision_config as JsonObject;
    prefix = "vision_config.";
  } else if (json.model_type !== "clip_vision_model") {
    fail("model_type", `is ${JSON.stringify(json.model_type)}; an image encoder must be a CLIP vision tower ("clip_vision_model", or "clip" with a vision_config)`);
  }
  const int = (key: string, dflt: number): number => {
    const v = c[key] ?? dflt;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) fail(prefix + key, `must be a positive integer (got ${JSON.stringify(c[key])})`);
    return v as number;
  };
  // Defaults: transformers' CLIPVisionConfig (ViT-B/32).
  const hiddenSize = int("hidden_size", 768);
  const numHeads = int("num_attention_heads", 12);
  if (hiddenSize % numHeads !== 0) fail(prefix + "num_attention_heads", `(${numHeads}) must divide hidden_size (${hiddenSize})`);
  const patchSize = int("patch_size", 32);
  const imageSize = int("image_size", 224);
  if (imageSize % patchSize !== 0) fail(prefix + "patch_size", `(${patchSize}) must divide image_size (${imageSize})`);
  const numChannels = int("num_channels", 3);
  if (numChannels !== 3) fail(prefix + "num_channels", `is ${numChannels}; only RGB encoders (3 channels) are supported`);
  const act = c.hidden_act ?? "quick_gelu";
  if (!(SUPPORTED_VISION_ACTIVATIONS as readonly unknown[]).includes(act))
    fail(prefix + "hidden_act", `is ${JSON.stringify(act)}; supported: ${SUPPORTED_VISION_ACTIVATIONS.join(", ")}`);
  const eps = c.layer_norm_eps ?? 1e-5;
  if (typeof eps !== "number" || !(eps > 0) || !Number.isFinite(eps)) fail(prefix + "layer_norm_eps", `must be a positive number (got ${JSON.stringify(c.layer_norm_eps)})`);
  return {
    hiddenSize,
    intermediateSize: int("intermediate_size", 3072),
    numLayers: int("num_hidden_layers", 12),
    numHeads,
    headDim: hiddenSize / numHeads,
    patchSize,
    imageSize,
    numChannels,
    hiddenAct: act as VisionActivation,
    layerNormEps: eps as number,
  };
}

export function readPreprocessConfig(dir: string): PreprocessConfig {
  const file = path.join(dir, "preprocessor_config.json");
  if (!fs.existsSync(file)) throw new ExcitorInputError(`${file}: not found; an image encoder folder needs the CLIPImageProcessor's preprocessor_config.json`, file);
  return parsePreprocessConfig(readJsonObject(file), file);
}

export function parsePreprocessConfig(json: JsonObject, file = "preprocessor_config.json"): PreprocessConfig {
  const fail = failer(file);
  const bool = (key: string, dflt: boolean): boolean => {
    const v = json[key] ?? dflt;
    if (typeof v !== "boolean") fail(key, `must be true or false (got ${JSON.stringify(json[key])})`);
    return v as boolean;
  };
  const positive = (field: string, v: unknown): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) fail(field, `must be a positive integer (got ${JSON.stringify(v)})`);
    return v as number;
  };
  const triple = (key: string, dflt: [number, number, number], nonZero: boolean): [number, number, number] => {
    const v = json[key] ?? dflt;
    const ok = Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === "number" && Number.isFinite(x) && (!nonZero || x !== 0));
    if (!ok) fail(key, `must be a list of 3 ${nonZero ? "non-zero " : ""}numbers, one per RGB channel (got ${JSON.stringify(json[key])})`);
    return v as [number, number, number];
  };
  const hw = (field: string, v: JsonObject): { height: number; width: number } => ({
    height: positive(`${field}.height`, v.height),
    width: positive(`${field}.width`, v.width),
  });

  // size: an int is the shortest edge (get_size_dict with default_to_square=False).
  const rawSize = json.size ?? { shortest_edge: 224 };
  let size: PreprocessConfig["size"];
  if (typeof rawSize === "number") size = { shortestEdge: positive("size", rawSize) };
  else if (isJsonObject(rawSize) && rawSize.shortest_edge !== undefined) size = { shortestEdge: positive("size.shortest_edge", rawSize.shortest_edge) };
  else if (isJsonObject(rawSize) && rawSize.height !== undefined && rawSize.width !== undefined) size = hw("size", rawSize);
  else size = fail("size", `must be an integer, {"shortest_edge": N} or {"height": H, "width": W} (got ${JSON.stringify(rawSize)})`);

  // crop_size: an int is a square (default_to_square=True).
  const rawCrop = json.crop_size ?? { height: 224, width: 224 };
  let crop: PreprocessConfig["crop"];
  if (typeof rawCrop === "number") crop = { height: positive("crop_size", rawCrop), width: rawCrop };
  else if (isJsonObject(rawCrop)) crop = hw("crop_size", rawCrop);
  else crop = fail("crop_size", `must be an integer or {"height": H, "width": W} (got ${JSON.stringify(rawCrop)})`);

  const resample = json.resample ?? PIL_BICUBIC;
  if (resample !== PIL_BICUBIC) fail("resample", `is ${JSON.stringify(resample)}; only bicubic (3) resizing is supported`);
  const rescaleFactor = json.rescale_factor ?? 1 / 255;
  if (typeof rescaleFactor !== "number" || !(rescaleFactor > 0) || !Number.isFinite(rescaleFactor))
    fail("rescale_factor", `must be a positive number (got ${JSON.stringify(json.rescale_factor)})`);
  return {
    size,
    crop,
    doResize: bool("do_resize", true),
    doCenterCrop: bool("do_center_crop", true),
    doRescale: bool("do_rescale", true),
    rescaleFactor: rescaleFactor as number,
    doNormalize: bool("do_normalize", true),
    imageMean: triple("image_mean", CLIP_MEAN, false),
    imageStd: triple("image_std", CLIP_STD, true),
    doConvertRgb: bool("do_convert_rgb", true),
  };
}
