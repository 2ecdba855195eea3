/**
 * GGUF models already on this machine, for the model pickers: `.gguf` files in the workspace
 * (the caller finds them), Ollama's models (`$OLLAMA_MODELS` or ~/.ollama/models: a manifest per
 * name:tag whose model layer is a blob without an extension, which the engine recognises by its
 * magic) and LM Studio's (~/.lmstudio/models, or the older ~/.cache/lm-studio/models). Each is
 * labelled with its quantization (general.file_type, else its linear weights' commonest type),
 * its size, and the reason Excitor cannot use it if it cannot (another architecture, a tensor
 * type the engine does not read). No vscode import: tested in plain Node with a fake home.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fmtBytes } from "../cli/format";
import type { GgufFile } from "../engine/formats/gguf";
import { GgufWeights, ggufHeader, ggufModelConfig } from "../engine/model/gguf-model";

export type GgufOrigin = "workspace" | "ollama" | "lmstudio";

export interface GgufModel {
  /** The file to open (for Ollama, its blob). */
  path: string;
  /** What the user knows it as: "llama3.2:3b" for Ollama, the file name otherwise. */
  name: string;
  origin: GgufOrigin;
  /** "Q4_K_M", "Q8_0", "F16"… */
  quantization: string;
  /** The file's size in bytes. */
  bytes: number;
  /** general.architecture ("llama", "qwen2"…), when the header says. */
  architecture?: string;
  /** Why Excitor cannot use it (the engine's message); absent when it can. */
  problem?: string;
  /** LM Studio: publisher/repository; Ollama: the manifest. */
  where: string;
}

export interface DiscoverOptions {
  /** The user's home folder (os.homedir()). */
  home: string;
  /** Environment (OLLAMA_MODELS). */
  env?: Record<string, string | undefined>;
  /** `.gguf` files the workspace holds. */
  workspaceFiles?: string[];
}

/** llama.cpp's llama_ftype (general.file_type) as it names them. */
const FILE_TYPES: Record<number, string> = {
  0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L",
  14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
  23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
  36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
};

const OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model";
const OLLAMA_REGISTRY = "registry.ollama.ai";
/** Folders below a models root that are searched (LM Studio: publisher/repository/file.gguf). */
const MAX_DEPTH = 4;

/** Every GGUF model found, usable ones first, each group by name; one entry per file. */
export function discoverGgufModels(o: DiscoverOptions): GgufModel[] {
  const found: GgufModel[] = [];
  const seen = new Set<string>();
  const add = (file: string, name: string, origin: GgufOrigin, where: string) => {
    const key = realPath(file);
    if (seen.has(key)) return;
    seen.add(key);
    const m = describeGguf(file, name, origin, where);
    if (m) found.push(m);
  };
  for (const f of o.workspaceFiles ?? []) add(f, path.basename(f), "workspace", path.dirname(f));
  for (const m of ollamaModels(ollamaRoot(o))) add(m.blob, m.name, "ollama", m.manifest);
  for (const dir of lmStudioRoots(o.home)) for (const f of ggufFilesUnder(dir)) add(f, path.basename(f), "lmstudio", path.relative(dir, path.dirname(f)));
  return found.sort((a, b) => Number(!!a.problem) - Number(!!b.problem) || ORIGINS.indexOf(a.origin) - ORIGINS.indexOf(b.origin) || a.name.localeCompare(b.name));
}

const ORIGINS: GgufOrigin[] = ["workspace", "ollama", "lmstudio"];

/** "llama3.2:3b · Q4_K_M · 1.88 GiB": how a picker names a model. */
export function ggufLabel(m: GgufModel): string {
  return `${m.name} · ${ggufDescription(m)}`;
}

/** "Q4_K_M · 1.88 GiB": its quantization and size. */
export function ggufDescription(m: GgufModel): string {
  return `${m.quantization} · ${fmtBytes(m.bytes)}`;
}

/** Where a model comes from, in words: "Ollama", "LM Studio (publisher/repo)", "workspace". */
export function ggufOrigin(m: GgufModel): string {
  return m.origin === "ollama" ? "Ollama" : m.origin === "lmstudio" ? `LM Studio${m.where ? ` (${m.where})` : ""}` : "workspace";
}

export function ollamaRoot(o: Pick<DiscoverOptions, "home" | "env">): string {
  const env = o.env?.OLLAMA_MODELS;
  return env && env.trim() !== "" ? env : path.join(o.home, ".ollama", "models");
}

export function lmStudioRoots(home: string): string[] {
  return [path.join(home, ".lmstudio", "models"), path.join(home, ".cache", "lm-studio", "models")];
}

/**
 * Ollama's models: manifests/<registry>/<namespace>/<model>/<tag>, each a JSON manifest whose
 * layer of media type application/vnd.ollama.image.model is blobs/sha256-<hex>. Named as
 * `ollama list` names them: "llama3.2:3b" for the library, "user/model:tag" or
 * "host/user/model:tag" otherwise.
 */
export function ollamaModels(root: string): { name: string; blob: string; manifest: string }[] {
  const manifests = path.join(root, "manifests");
  const out: { name: string; blob: string; manifest: string }[] = [];
  for (const host of dirs(manifests))
    for (const ns of dirs(path.join(manifests, host)))
      for (const model of dirs(path.join(manifests, host, ns)))
        for (const tag of files(path.join(manifests, host, ns, model))) {
          const manifest = path.join(manifests, host, ns, model, tag);
          const digest = modelDigest(manifest);
          if (!digest) continue;
          const blob = path.join(root, "blobs", `sha256-${digest}`);
          if (!isFile(blob)) continue;
          const repo = host === OLLAMA_REGISTRY ? (ns === "library" ? model : `${ns}/${model}`) : `${host}/${ns}/${model}`;
          out.push({ name: `${repo}:${tag}`, blob, manifest });
        }
  return out;
}

/** The hex digest of a manifest's model layer; undefined for anything else (a digest is data: only 64 hex digits name a blob). */
function modelDigest(manifest: string): string | undefined {
  try {
    const json = JSON.parse(fs.readFileSync(manifest, "utf8")) as { layers?: { mediaType?: unknown; digest?: unknown }[] };
    const layer = Array.isArray(json.layers) ? json.layers.find((l) => l && l.mediaType === OLLAMA_MODEL_LAYER) : undefined;
    const m = typeof layer?.digest === "string" ? /^sha256[:-]([0-9a-f]{64})$/.exec(layer.digest) : null;
    return m?.[1];
  } catch {
    return undefined; // not a manifest
  }
}

/** `.gguf` files under `dir`, at most MAX_DEPTH folders down. */
export function ggufFilesUnder(dir: string, depth = 0): string[] {
  if (depth > MAX_DEPTH) return [];
  const out: string[] = [];
  for (const e of entries(dir)) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() || (e.isSymbolicLink() && isDir(p))) out.push(...ggufFilesUnder(p, depth + 1));
    else if (/\.gguf$/i.test(e.name) && isFile(p)) out.push(p);
  }
  return out.sort();
}

const described = new Map<string, { key: string; facts: Pick<GgufModel, "quantization" | "architecture" | "problem"> }>();

/** The model in `file` with its quantization and any reason Excitor cannot use it; undefined when it is not a GGUF file at all. */
export function describeGguf(file: string, name: string, origin: GgufOrigin, where: string): GgufModel | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return undefined;
  }
  const key = `${st.size}:${st.mtimeMs}`;
  let facts = described.get(file)?.key === key ? described.get(file)!.facts : undefined;
  if (!facts) {
    let g: GgufFile;
    try {
      g = ggufHeader(file);
    } catch (e) {
      // A file named .gguf that does not read: listed with the reason, so the user knows why it cannot be picked.
      facts = { quantization: "?", problem: e instanceof Error ? e.message : String(e) };
      described.set(file, { key, facts });
      return { path: file, name, origin, bytes: st.size, where, ...facts };
    }
    facts = { quantization: quantizationOf(g), architecture: typeof g.metadata.get("general.architecture") === "string" ? (g.metadata.get("general.architecture") as string) : undefined, problem: problemOf(g) };
    described.set(file, { key, facts });
  }
  return { path: file, name, origin, bytes: st.size, where, ...facts };
}

/** general.file_type's name, else the type most of the linear weights' parameters are stored in. */
export function quantizationOf(g: GgufFile): string {
  const ft = g.metadata.get("general.file_type");
  if (typeof ft === "number" && Object.hasOwn(FILE_TYPES, ft)) return FILE_TYPES[ft];
  const params = new Map<string, number>();
  for (const t of g.tensors.values()) {
    if (t.shape.length !== 2) continue;
    const n = t.shape[0] * t.shape[1];
    params.set(t.type.name, (params.get(t.type.name) ?? 0) + n);
  }
  let best = "?";
  for (const [type, n] of params) if (best === "?" || n > params.get(best)!) best = type;
  return best;
}

/** Why the engine cannot open this file as a model (its own message), or undefined. */
function problemOf(g: GgufFile): string | undefined {
  try {
    GgufWeights.open(g.file, ggufModelConfig(g)); // the header just read: names, shapes and types, no tensor data
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

function realPath(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

function entries(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

const dirs = (dir: string) => entries(dir).filter((e) => e.isDirectory() || (e.isSymbolicLink() && isDir(path.join(dir, e.name)))).map((e) => e.name);
const files = (dir: string) => entries(dir).filter((e) => e.isFile() || (e.isSymbolicLink() && isFile(path.join(dir, e.name)))).map((e) => e.name);

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The Ollama name ("llama3.2:3b") of a blob of Ollama's models folder; undefined for any other path. */
export function ollamaName(file: string, o: Pick<DiscoverOptions, "home" | "env">): string | undefined {
  const root = ollamaRoot(o);
  if (path.resolve(path.dirname(file)) !== path.resolve(root, "blobs")) return undefined;
  return ollamaModels(root).find((m) => path.resolve(m.blob) === path.resolve(file))?.name;
}
