/**
 * The forgetting monitor: how far tuning has moved the model away from what the base model
 * knew, measured on a retention set of text the base model knows.
 *
 * The default set needs no data: 64 samples of up to 128 tokens that the frozen base model
 * writes itself, from BOS at temperature 1 (no top-k, top-p or repetition penalty), seeded by the
 * run's seed, made once at the start of a run and saved in the run folder as retention.jsonl
 * (`{"text", "ids"}` per line), which a resumed run reads back. Its own samples are what the
 * base model predicts well, so any drift of its next-token distributions on them is forgetting.
 *
 * `--retain` (a list, repeatable or comma-separated) picks the set:
 * - `base`: the base model's samples (the default);
 * - `none`: no monitor;
 * - any other value is a file of the user's own text, replacing the base samples unless `base`
 *   is listed too (`base,notes.txt` uses both): `.jsonl` takes each line's `text` field, any
 *   other file is plain text with one sample per blank-line-separated paragraph.
 * Every text is tokenized with BOS and cut to 128 tokens (or the model's context); a text that
 * ends within that gets EOS, as a base sample that stopped at EOS keeps it.
 *
 * At every validation: the mean per-token KL(base ‖ tuned) over all next-token positions, and the
 * tuned/base perplexity ratio on the set's actual next tokens.
 */
import * as fs from "node:fs";
import { decodeUtf8 } from "../data/utf8";
import * as path from "node:path";
import { ExcitorInputError, check } from "../errors";
import { writeFileAtomic } from "../fs-atomic";
import { sampleSet } from "../generate/sample-set";
import { makeBatch } from "./batches";
import { Rng } from "../rng";
import type { ModelRuntime, TrainBatch } from "../runtime";
import type { TextTokenizer } from "../tokenizer/tokenizer";
import type { RetentionMeasure } from "./events";

export const RETENTION_FILE = "retention.jsonl";
export const RETENTION_DEFAULTS = { samples: 64, maxTokens: 128 };
/** Samples decoded together: 64 rows of 128 tokens keep 64 KV caches, small next to the weights of the models this runs on. */
export const SAMPLE_ROWS = 64;
/** Token positions per measuring forward pass (B·T): bounds the [B·T, V] rows held at once. */
export const ROWS_PER_PASS = 2048;
/** Base-model samples generated concurrently. */
const DECODES_IN_FLIGHT = 4;
/** Base rows are kept between validations when they take at most this many floats (64 MB). */
const CACHE_FLOATS = 16 * 1024 * 1024;

export interface RetentionSample {
  text: string;
  /** Token ids, BOS first, at most RETENTION_DEFAULTS.maxTokens (or the model's context). */
  ids: number[];
}

/** What `--retain` asked for: the base model's samples, files of the user's text, or neither (off). */
export interface RetainSpec {
  base: boolean;
  files: string[];
}

export const RETAIN_DEFAULT: RetainSpec = { base: true, files: [] };
export const RETAIN_NONE: RetainSpec = { base: false, files: [] };

/** `--retain` values (each possibly a comma list) → a spec; "none" must stand alone. */
export function parseRetain(values: readonly string[]): RetainSpec {
  const items = values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v.length > 0);
  if (items.length === 0) return RETAIN_DEFAULT;
  if (items.includes("none")) {
    check(items.length === 1, `--retain: "none" turns the forgetting monitor off and cannot be combined with ${items.filter((i) => i !== "none").join(", ")}`);
    return RETAIN_NONE;
  }
  return { base: items.includes("base"), files: [...new Set(items.filter((i) => i !== "base"))] };
}

export const retainOff = (s: RetainSpec): boolean => !s.base && s.files.length === 0;

/** For the fingerprint and messages: "base", "none", "base,a.txt". */
export function retainLabel(s: RetainSpec): string {
  return retainOff(s) ? "none" : [...(s.base ? ["base"] : []), ...s.files].join(",");
}

export function retentionSource(s: RetainSpec): "base" | "file" | "base+file" {
  return s.files.length === 0 ? "base" : s.base ? "base+file" : "file";
}

/** The longest sample, in tokens: 128, or the model's context if smaller. */
export const retentionLength = (rt: ModelRuntime): number => Math.min(RETENTION_DEFAULTS.maxTokens, rt.config.maxPositions);

/**
 * `count` samples the frozen base model writes from BOS at temperature 1, sample i seeded from
 * (seed, stream): the same seed gives the same set on the same engine. `stream` separates the
 * measured set from the replay set that --retain-weight trains on.
 */
export async function baseSamples(rt: ModelRuntime, tok: TextTokenizer, o: { seed: number; count?: number; stream?: number }): Promise<RetentionSample[]> {
  if (tok.bosId === undefined) throw new ExcitorInputError("the tokenizer has no BOS token, so the base model cannot write retention samples; pass --retain FILE or --retain none");
  const limit = retentionLength(rt);
  const bos = tok.bosId;
  const rng = new Rng(o.seed * 7919 + 104_729 * ((o.stream ?? 0) + 1));
  const seeds = Array.from({ length: o.count ?? RETENTION_DEFAULTS.samples }, () => Math.floor(rng.next() * 0x1_0000_0000));
  // All samples in lockstep (engine/generate/sample-set.ts): 128 decode steps for the whole set.
  const texts = await sampleSet(rt, tok, { count: seeds.length, maxTokens: limit - 1, temperature: 1, seeds: (i) => seeds[i], useAdapter: false, rows: SAMPLE_ROWS });
  return texts.map((ids) => ({ text: tok.decode(ids, { skipSpecial: true }), ids: [bos, ...ids] }));
}

/** The user's text as retention samples (see the file header for the formats). */
export function readRetainFile(file: string, tok: TextTokenizer, limit: number): RetentionSample[] {
  return readTexts(file, "--retain").map((text) => encodeRetained(text, tok, limit));
}

/**
 * Plain texts from a file: JSON Lines with a `text` field, or any other file as paragraphs
 * separated by blank lines. `option` names the flag that gave the file, for messages.
 */
export function readTexts(file: string, option: string): string[] {
  let raw: string;
  try {
    check(!fs.statSync(file).isDirectory(), `${option} ${file}: is a folder; expected a .txt or .jsonl file`, file);
    raw = decodeUtf8(fs.readFileSync(file), file).replace(/^\uFEFF/, "");
  } catch (e) {
    if (e instanceof ExcitorInputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new ExcitorInputError(code === "ENOENT" ? `${option} ${file}: file not found` : `${option} ${file}: cannot read (${(e as Error).message})`, file);
  }
  const texts: string[] = [];
  if (file.toLowerCase().endsWith(".jsonl")) {
    raw.split("\n").forEach((line, i) => {
      if (!line.trim()) return;
      const at = `${file}:${i + 1}`;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (e) {
        throw new ExcitorInputError(`${at}: not valid JSON (${(e as Error).message})`, file, i + 1);
      }
      const text = (value as { text?: unknown } | null)?.text;
      if (typeof text !== "string" || !text.trim()) throw new ExcitorInputError(`${at}: needs a non-empty "text" string field`, file, i + 1);
      texts.push(text);
    });
  } else {
    // A loop, not push(...): a file of a few hundred thousand paragraphs would overflow the call stack.
    for (const p of raw.split(/\r?\n[ \t]*\r?\n/)) if (p.trim().length > 0) texts.push(p.trim());
  }
  if (texts.length === 0) throw new ExcitorInputError(`${option} ${file}: holds no text`, file);
  return texts;
}

function encodeRetained(text: string, tok: TextTokenizer, limit: number): RetentionSample {
  const { ids } = tok.encodePrefix(text, limit, { bos: true, eos: false }); // only what is kept: a paragraph may be megabytes
  if (ids.length < limit && tok.eosIds.length) ids.push(tok.eosIds[0]);
  return { text, ids: ids.slice(0, limit) };
}

/** The run's retention set: read back from the run folder on resume, else made and saved there. */
export async function retentionSet(rt: ModelRuntime, tok: TextTokenizer, spec: RetainSpec, o: { seed: number; outDir: string; resume: boolean }): Promise<RetentionSample[]> {
  return savedSamples(path.join(o.outDir, RETENTION_FILE), o.resume, async () => {
    const limit = retentionLength(rt);
    // Files are read first: a bad file fails before the base model spends time writing samples.
    const fromFiles = spec.files.flatMap((f) => readRetainFile(f, tok, limit));
    const samples = [...(spec.base ? await baseSamples(rt, tok, { seed: o.seed }) : []), ...fromFiles].filter((s) => s.ids.length >= 2);
    check(samples.length > 0, `--retain ${retainLabel(spec)}: no text of two tokens or more to measure on`);
    return samples;
  });
}

/**
 * The replay set that --retain-weight trains on: base samples like the default retention set's,
 * from another seed stream, so that the measured set is never trained on.
 */
export function replaySet(rt: ModelRuntime, tok: TextTokenizer, o: { seed: number; outDir: string; resume: boolean }): Promise<RetentionSample[]> {
  return savedSamples(path.join(o.outDir, REPLAY_FILE), o.resume, () => baseSamples(rt, tok, { seed: o.seed, stream: 1 }));
}

export const REPLAY_FILE = "retention-replay.jsonl";

/** Reads `file` back on resume, else makes the samples and saves them there atomically. */
async function savedSamples(file: string, resume: boolean, make: () => Promise<RetentionSample[]>): Promise<RetentionSample[]> {
  if (resume && fs.existsSync(file)) return readRetentionFile(file);
  const samples = await make();
  writeFileAtomic(file, samples.map((s) => JSON.stringify(s)).join("\n") + "\n");
  return samples;
}

export function readRetentionFile(file: string): RetentionSample[] {
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l, i) => {
      const s = JSON.parse(l) as RetentionSample;
      check(typeof s.text === "string" && Array.isArray(s.ids) && s.ids.length >= 2, `${file}:${i + 1}: needs "text" and "ids" (two tokens or more)`, file, i + 1);
      return s;
    });
}

/**
 * Samples → right-padded next-token batches of about ROWS_PER_PASS positions; weights mark real
 * positions. Longest first, so that a batch holds samples of like length and little padding
 * (the measures are sums, so the order does not matter to them).
 */
export function retentionBatches(unsorted: readonly RetentionSample[], padId: number, rowsPerPass = ROWS_PER_PASS): TrainBatch[] {
  const samples = [...unsorted].sort((a, b) => b.ids.length - a.ids.length);
  const out: TrainBatch[] = [];
  let i = 0;
  while (i < samples.length) {
    let j = i + 1;
    let T = samples[i].ids.length - 1;
    while (j < samples.length && (j + 1 - i) * Math.max(T, samples[j].ids.length - 1) <= rowsPerPass) T = Math.max(T, samples[j++].ids.length - 1);
    // Plain text: every token after BOS is a target.
    out.push(makeBatch(samples.slice(i, j).map((x) => ({ ids: x.ids, lossMask: new Uint8Array(x.ids.length).fill(1), truncated: false, line: 0 })), padId));
    i = j;
  }
  return out;
}

/** Sums over the counted positions of one batch (the pieces of a RetentionMeasure). */
export interface RetentionSums {
  /** Σ KL(base ‖ tuned) over positions, nats. */
  kl: number;
  /** Σ −log p(actual next token), base and tuned. */
  nllBase: number;
  nllTuned: number;
  tokens: number;
}

/**
 * What the KL needs of the base model's rows, computed once per batch: its probabilities p and,
 * per counted position, Σ_v p·log p and −log p(actual next token).
 */
export interface BaseRows {
  /** [B·T, V] probabilities (exp of the log-softmax rows). */
  p: Float32Array;
  /** [B·T] Σ_v p_v·log p_v (0 at positions that do not count). */
  plogp: Float64Array;
  /** Σ over counted positions of −log p_base(next token). */
  nll: number;
}

export function baseRows(logp: Float32Array, batch: TrainBatch, V: number): BaseRows {
  const rows = batch.batch * batch.seqLen;
  const p = new Float32Array(logp.length);
  const plogp = new Float64Array(rows);
  let nll = 0;
  for (let r = 0; r < rows; r++) {
    if (!batch.weights[r]) continue;
    const o = r * V;
    let h = 0;
    for (let v = 0; v < V; v++) {
      const e = Math.exp(logp[o + v]);
      p[o + v] = e;
      h += e * logp[o + v];
    }
    plogp[r] = h;
    nll -= logp[o + batch.targets[r]];
  }
  return { p, plogp, nll };
}

/**
 * `tuned`: the tuned model's log-softmax rows [B·T, V]; positions with weight 0 are skipped.
 * KL(p‖q) = Σ_v p_v (log p_v − log q_v) = Σ p·log p − Σ p·log q, p the base's distribution.
 */
export function retentionSumsFrom(base: BaseRows, tuned: Float32Array, batch: TrainBatch, V: number): RetentionSums {
  const s: RetentionSums = { kl: 0, nllBase: base.nll, nllTuned: 0, tokens: 0 };
  for (let r = 0; r < batch.batch * batch.seqLen; r++) {
    if (!batch.weights[r]) continue;
    const o = r * V;
    let cross = 0;
    for (let v = 0; v < V; v++) cross += base.p[o + v] * tuned[o + v];
    s.kl += base.plogp[r] - cross;
    s.nllTuned -= tuned[o + batch.targets[r]];
    s.tokens++;
  }
  return s;
}

/** As retentionSumsFrom, from the base model's log-softmax rows. */
export function retentionSums(base: Float32Array, tuned: Float32Array, batch: TrainBatch, V: number): RetentionSums {
  return retentionSumsFrom(baseRows(base, batch, V), tuned, batch, V);
}

export function retentionMeasure(parts: readonly RetentionSums[]): RetentionMeasure {
  const t = parts.reduce((a, p) => ({ kl: a.kl + p.kl, nllBase: a.nllBase + p.nllBase, nllTuned: a.nllTuned + p.nllTuned, tokens: a.tokens + p.tokens }), { kl: 0, nllBase: 0, nllTuned: 0, tokens: 0 });
  // Rounding can make a KL of identical distributions a hair below 0; it is 0.
  return { kl: Math.max(0, t.kl / t.tokens), pplRatio: Math.exp((t.nllTuned - t.nllBase) / t.tokens) };
}

/**
 * Measures the tuned model (useAdapter true: the adapter, or the trained copy in full training)
 * against the base (useAdapter false) on a retention set. The base's rows never change during a
 * run, so they are computed once and kept when small enough.
 */
export class RetentionMonitor {
  readonly batches: TrainBatch[];
  readonly tokens: number;
  private readonly keep: boolean;
  private base: BaseRows[] | undefined;

  constructor(
    private readonly rt: ModelRuntime,
    readonly samples: readonly RetentionSample[],
    padId: number,
  ) {
    this.batches = retentionBatches(samples, padId);
    this.tokens = samples.reduce((n, s) => n + s.ids.length, 0);
    this.keep = this.batches.reduce((n, b) => n + b.batch * b.seqLen, 0) * rt.config.vocabSize <= CACHE_FLOATS;
  }

  async measure(): Promise<RetentionMeasure> {
    const V = this.rt.config.vocabSize;
    const parts: RetentionSums[] = [];
    for (const [i, b] of this.batches.entries()) {
      let base = this.base?.[i];
      if (!base) {
        base = baseRows(await this.rt.logprobRows(b.ids, b.batch, b.seqLen, false), b, V);
        if (this.keep) (this.base ??= [])[i] = base;
      }
      parts.push(retentionSumsFrom(base, await this.rt.logprobRows(b.ids, b.batch, b.seqLen, true), b, V));
    }
    return retentionMeasure(parts);
  }
}
