/**
 * What the training wizard needs to know for a multimodal run: whether the dataset's records carry
 * images (then it asks for the vision encoder), and whether a folder looks like a CLIP vision
 * encoder. Both read little: the first lines of the dataset, the encoder's two JSON files; the
 * engine checks the rest when the run starts. No vscode import, so it is tested in plain Node.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { isJsonObject, readJsonObject } from "../engine/json-file";
import { ExcitorInputError } from "../engine/errors";

/** How many lines of a dataset are looked at for `"image"` fields. */
export const IMAGE_PROBE_LINES = 50;
/** At most this much of the file is read for them (a JSON array may be one long line). */
const PROBE_BYTES = 1024 * 1024;

/**
 * Whether the records at the start of a dataset (JSON Lines, or a JSON array) give images: an
 * `"image": "path"` field, as multimodal datasets do (LLaVA style, in Alpaca and chat records alike).
 */
export function datasetHasImages(file: string): boolean {
  let text: string;
  try {
    const fd = fs.openSync(file, "r");
    try {
      const buf = Buffer.alloc(PROBE_BYTES);
      text = buf.subarray(0, fs.readSync(fd, buf, 0, PROBE_BYTES, 0)).toString("utf8");
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false; // the dataset check says why it cannot be read
  }
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/).slice(0, IMAGE_PROBE_LINES);
  for (const line of lines) {
    const t = line.trim().replace(/,$/, "");
    if (t === "") continue;
    let record: unknown;
    try {
      record = JSON.parse(t);
    } catch {
      // Part of a JSON array spread over lines, or cut at the probe's end: the field itself shows.
      if (/"image"\s*:\s*"[^"]/.test(t)) return true;
      continue;
    }
    if (isJsonObject(record) && typeof record.image === "string" && record.image !== "") return true;
    if (Array.isArray(record) && record.some((r) => isJsonObject(r) && typeof r.image === "string" && r.image !== "")) return true;
  }
  return false;
}

const ENCODER_LAYOUT = "a CLIP vision encoder folder (config.json, preprocessor_config.json, *.safetensors)";

/** Why `dir` is not a vision encoder folder, in one line naming the file; undefined when it looks like one. */
export function visionEncoderProblem(dir: string): string | undefined {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) return `${dir}: not a folder; the vision encoder is ${ENCODER_LAYOUT}`;
  for (const name of ["config.json", "preprocessor_config.json"]) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) return `${file}: not found; the vision encoder is ${ENCODER_LAYOUT}`;
  }
  const file = path.join(dir, "config.json");
  try {
    readJsonObject(path.join(dir, "preprocessor_config.json"));
    const config = readJsonObject(file);
    const type = config.model_type;
    if (type === "clip_vision_model") return undefined;
    if (type === "clip" && isJsonObject(config.vision_config)) return undefined;
    if (type === "clip") return `${file}: "vision_config" is missing; a CLIP config needs it for its vision tower`;
    return `${file}: "model_type" is ${JSON.stringify(type)}, expected "clip_vision_model" (or "clip" with a vision_config)`;
  } catch (e) {
    return e instanceof ExcitorInputError ? e.message : String(e);
  }
}
