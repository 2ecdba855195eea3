/**
 * The checks a run must pass before it exists: the model (a folder or a GGUF file) and the
 * dataset, read with the engine's own readers so that the messages (file, line, field) are
 * exactly the engine's. They are cheap: config.json, the presence of tokenizer.json, the
 * safetensors or GGUF headers and one parse of the dataset, not the weights. No vscode import,
 * so it is tested in plain Node.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { readDataset } from "../engine/data/datasets";
import { ExcitorInputError } from "../engine/errors";
import { readModelConfig } from "../engine/model/config";
import { WeightFiles } from "../engine/model/weights";
import { isGgufPath } from "../engine/formats/gguf";
import { GgufWeights, ggufHeader, ggufModelConfig } from "../engine/model/gguf-model";
import { tokenizerJsonFromGguf } from "../engine/tokenizer/gguf-vocab";
import type { RunError } from "./run-manager";

/** What a good model folder tells the wizard. */
export interface ModelFacts {
  /** The model's context: max_position_embeddings in config.json. */
  maxPositions: number;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; error: RunError };

const MODEL_LAYOUT = "a Hugging Face model folder (config.json, *.safetensors, tokenizer.json) or a .gguf file";

/** Whether `dir` is a model folder or GGUF file the engine can open; the error is the engine's, or says what `dir` is instead. */
export function checkModel(dir: string): Checked<ModelFacts> {
  let stat: fs.Stats | undefined;
  try {
    stat = fs.statSync(dir);
  } catch {
    // not there: readModelConfig says so in the engine's words
  }
  if (stat && !stat.isDirectory()) {
    if (isGgufPath(dir)) return attempt(() => checkGguf(dir));
    return { ok: false, error: { message: `${dir}: a file, not a folder; Excitor needs ${MODEL_LAYOUT}` } };
  }
  return attempt(() => {
    const config = readModelConfig(dir);
    const tokenizer = path.join(dir, "tokenizer.json");
    // The engine's words when it opens the tokenizer (engine/tokenizer/tokenizer.ts).
    if (!fs.existsSync(tokenizer)) throw new ExcitorInputError(`${tokenizer}: file not found (a tokenizer folder needs tokenizer.json)`, tokenizer);
    WeightFiles.open(dir, config); // headers only: names and shapes, no weights
    return { maxPositions: config.maxPositions };
  });
}

/** A GGUF file's config, tensors (names, shapes, types) and tokenizer metadata, as the engine reads them. */
function checkGguf(file: string): ModelFacts {
  const g = ggufHeader(file);
  const config = ggufModelConfig(g);
  GgufWeights.open(file, config);
  tokenizerJsonFromGguf(g.metadata, file);
  return { maxPositions: config.maxPositions };
}

/** Whether `file` is a dataset the engine reads; the error names the file and line. */
export function checkDataset(file: string): Checked<{ records: number }> {
  let key: string | undefined;
  try {
    const s = fs.statSync(file);
    key = `${file}\0${s.size}\0${s.mtimeMs}`;
    const seen = datasetCache.get(file);
    if (seen && seen.key === key) return seen.result;
  } catch {
    // missing: readDataset says so
  }
  const result = attempt(() => ({ records: readDataset(file).length }));
  if (key) datasetCache.set(file, { key, result });
  return result;
}

/** The wizard checks a dataset when it is chosen and the run manager again at start: parse a large file once. */
const datasetCache = new Map<string, { key: string; result: Checked<{ records: number }> }>();

/** Tokens per example: the user's setting, but no more than the model can attend over. */
export function defaultMaxLength(setting: number, maxPositions: number | undefined): number {
  return maxPositions === undefined ? setting : Math.min(setting, maxPositions);
}

function attempt<T>(fn: () => T): Checked<T> {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    if (e instanceof ExcitorInputError) return { ok: false, error: { message: e.message, file: e.file, line: e.line } };
    // An unreadable file or folder (permissions, a device): still one line, naming the path.
    const err = e as NodeJS.ErrnoException;
    return { ok: false, error: { message: `${err.path ?? ""}${err.path ? ": " : ""}cannot read (${err.code ?? err.message})` } };
  }
}
