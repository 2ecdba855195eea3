/**
 * The tables of the quantized section of `npm run bench` (bench/quantized.ts measures), from
 * the workers' results alone, so that they can be checked without running anything: memory
 * and training speed at f32 / q8 / q4, decode speed against llama.cpp on the same GGUF files,
 * and the issue's targets, each marked met or not met from the numbers.
 */
import { fmtInt } from "../cli/format";
import type { LlamaCppResult } from "./llama-cpp";
import type { WorkerResult } from "./spec";
import { median } from "./worker-run";

export const PRECISIONS = ["f32", "q8", "q4"] as const;
export type Precision = (typeof PRECISIONS)[number];
export type QuantFile = "Q8_0" | "Q4_0";

/** What each precision runs: the GGUF file it opens and openModel's `weights`. */
export const PRECISION_RUN: Record<Precision, { file: QuantFile; weights: "f32" | "stored"; what: string }> = {
  f32: { file: "Q8_0", weights: "f32", what: "Q8_0 file, dequantized to float32 at load" },
  q8: { file: "Q8_0", weights: "stored", what: "Q8_0 file, as stored" },
  q4: { file: "Q4_0", weights: "stored", what: "Q4_0 file, as stored" },
};

/** The targets. */
export const TARGETS = { q4TrainPeakOfF32: 0.35, decodeVsLlamaCpp: 1.0, q4TrainSpeedOfF32: 1.0 };

export interface QuantMeasures {
  /** Threads each engine computed with. */
  threads: number;
  /** Training only (no generation), one process per precision. */
  train: Record<Precision, WorkerResult>;
  /** Greedy decoding of the base model only, one process per precision: peak RSS to chat. */
  chat: Record<Precision, WorkerResult>;
  llamaCpp: Record<QuantFile, LlamaCppResult>;
}

const MIB = 2 ** 20;
const mib = (bytes: number) => fmtInt(Math.round(bytes / MIB));
const cell = (s: string) => s.replace(/\|/g, "/").replace(/\n/g, " ");
/** A worker's error as a table cell, without the file's path at its start. */
const why = (e: string) => `cannot run: ${cell(e.replace(/^\/\S*: /, ""))}`;
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);
const x = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : "–");
const pct = (r: number) => (Number.isFinite(r) ? `${Math.round(r * 100)} %` : "–");
const tps = (t: number, digits: number) => (Number.isFinite(t) ? (digits ? t.toFixed(digits) : fmtInt(Math.round(t))) : "–");
const peak = (r: WorkerResult | LlamaCppResult) => (r.error || !r.peakRssBytes ? NaN : r.peakRssBytes);

/** Train peak RSS, chat peak RSS and train tok/s per precision, each with its ratio to f32. */
export function memoryTable(m: QuantMeasures): string {
  const out = [
    "| weights | what the engine holds | train peak RSS MiB | × f32 | chat peak RSS MiB | × f32 | train tok/s | × f32 |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
  ];
  const f32Train = peak(m.train.f32);
  const f32Chat = peak(m.chat.f32);
  const f32Speed = median(m.train.f32.train);
  for (const p of PRECISIONS) {
    const [t, c] = [m.train[p], m.chat[p]];
    const speed = median(t.train);
    const cells = [
      ...(t.error ? [why(t.error), ""] : [mib(t.peakRssBytes), x(ratio(peak(t), f32Train))]),
      ...(c.error ? [why(c.error), ""] : [mib(c.peakRssBytes), x(ratio(peak(c), f32Chat))]),
      ...(t.error ? ["", ""] : [tps(speed, 0), x(ratio(speed, f32Speed))]),
    ];
    out.push(`| ${p} | ${PRECISION_RUN[p].what} | ${cells.join(" | ")} |`);
  }
  return out.join("\n");
}

/** Decode tok/s, ours against llama.cpp on the same file, with both processes' peak memory. */
export function decodeTable(m: QuantMeasures): string {
  const out = [
    "| GGUF file | excitor onnxruntime tok/s | llama.cpp tok/s | × llama.cpp | excitor peak RSS MiB | llama.cpp peak RSS MiB |",
    "|---|---:|---:|---:|---:|---:|",
  ];
  for (const [file, p] of [["Q8_0", "q8"], ["Q4_0", "q4"]] as [QuantFile, Precision][]) {
    const [ours, theirs] = [m.chat[p], m.llamaCpp[file]];
    const [a, b] = [ours.error ? NaN : median(ours.gen), theirs.error ? NaN : median(theirs.gen)];
    out.push(
      `| ${file} | ${ours.error ? why(ours.error) : tps(a, 1)} | ${theirs.error ? why(theirs.error) : tps(b, 1)} | ${x(ratio(a, b))} | ` +
        `${ours.error ? "–" : mib(ours.peakRssBytes)} | ${theirs.error ? "–" : mib(theirs.peakRssBytes)} |`,
    );
  }
  return out.join("\n");
}

export interface TargetRow {
  target: string;
  /** The measured value as shown, or why it was not measured. */
  measured: string;
  /** undefined: not measured. */
  met: boolean | undefined;
}

/** The targets against this run's numbers. */
export function targetRows(m: QuantMeasures): TargetRow[] {
  const rows: TargetRow[] = [];
  const missing = (...rs: (WorkerResult | LlamaCppResult)[]) => rs.find((r) => r.error)?.error;
  const row = (target: string, value: number, show: (v: number) => string, ok: (v: number) => boolean, ...from: (WorkerResult | LlamaCppResult)[]) => {
    const err = missing(...from);
    if (err || !Number.isFinite(value)) rows.push({ target, measured: `not measured: ${cell(err ?? "no timed runs")}`, met: undefined });
    else rows.push({ target, measured: show(value), met: ok(value) });
  };
  const peakShare = ratio(peak(m.train.q4), peak(m.train.f32));
  row(`q4 training peak RSS ≤ ${pct(TARGETS.q4TrainPeakOfF32)} of f32's`, peakShare, pct, (v) => v <= TARGETS.q4TrainPeakOfF32, m.train.q4, m.train.f32);
  for (const [file, p] of [["Q8_0", "q8"], ["Q4_0", "q4"]] as [QuantFile, Precision][]) {
    const r = ratio(median(m.chat[p].gen), median(m.llamaCpp[file].gen));
    row(`decode ≥ ${x(TARGETS.decodeVsLlamaCpp)} llama.cpp's at ${file}`, r, x, (v) => v >= TARGETS.decodeVsLlamaCpp, m.chat[p], m.llamaCpp[file]);
  }
  const speed = ratio(median(m.train.q4.train), median(m.train.f32.train));
  row("q4 training tok/s ≥ f32's", speed, x, (v) => v >= TARGETS.q4TrainSpeedOfF32, m.train.q4, m.train.f32);
  return rows;
}

export function targetTable(m: QuantMeasures): string {
  const mark = (met: boolean | undefined) => (met === undefined ? "not measured" : met ? "**met**" : "**not met**");
  return ["| target | measured | reached |", "|---|---:|---|", ...targetRows(m).map((r) => `| ${r.target} | ${r.measured} | ${mark(r.met)} |`)].join("\n");
}

/** The section as Markdown: the three tables and who ran llama.cpp. */
export function quantizedMarkdown(m: QuantMeasures): string {
  const peer = m.llamaCpp.Q4_0.error ? m.llamaCpp.Q8_0 : m.llamaCpp.Q4_0;
  const note = peer.error ? "" : `\n\nllama.cpp: ${peer.backend}.`;
  return `${memoryTable(m)}\n\n${decodeTable(m)}${note}\n\n${targetTable(m)}`;
}
