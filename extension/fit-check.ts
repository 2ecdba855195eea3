/**
 * Before a training starts: will it fit in memory? The engine's estimate for the run's spec
 * (engine/model/memory.ts) against what the machine has free now (/proc/meminfo's MemAvailable,
 * which counts reclaimable caches, or os.freemem() elsewhere). A run that will not fit gets a
 * warning to confirm, naming what takes the memory and what would make it fit, instead of an
 * engine killed by the system halfway. No vscode import: the decision is tested in plain Node.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import { fmtBytes } from "../cli/format";
import { estimateMemory, type HeldPrecision, type MemoryEstimate } from "../engine/model/memory";
import { openWeightSource, readModelConfigAt } from "../engine/model/source";
import { parseTargets } from "../engine/lora/config";
import { TRAIN_DEFAULTS } from "../engine/train/trainer";
import { methodOf, type RunSpec } from "./run-spec";

/** Share of the free memory a run may plan to use: the rest is for the editor and whatever else starts meanwhile. */
export const USABLE_SHARE = 0.9;

/** Bytes free for a new process: MemAvailable on Linux, os.freemem() where there is no /proc/meminfo. */
export function freeMemory(meminfo = "/proc/meminfo"): number {
  try {
    const m = /^MemAvailable:\s+(\d+)\s+kB/m.exec(fs.readFileSync(meminfo, "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return os.freemem();
}

export interface FitCheck {
  estimate: MemoryEstimate;
  free: number;
  fits: boolean;
  /** The same run with 4-bit weights, when that fits and the spec does not already ask for it. */
  withQ4?: MemoryEstimate;
  /** The warning to show when it does not fit. */
  message?: string;
}

/** Whether `needed` bytes fit in `free`, keeping USABLE_SHARE's margin. */
export function fits(needed: number, free: number): boolean {
  return needed <= USABLE_SHARE * free;
}

/** The memory the spec's run will take, as the engine would hold the model. */
export function trainingEstimate(spec: RunSpec, weights: HeldPrecision = spec.weights ?? "stored"): MemoryEstimate {
  const config = readModelConfigAt(spec.model);
  const source = openWeightSource(spec.model, config); // headers only
  const method = methodOf(spec);
  return estimateMemory(config, source, weights, {
    task: "train",
    context: spec.maxLength,
    // The extension does not set --micro-batch: the engine's default, or the batch when smaller.
    batch: Math.min(spec.batchSize, TRAIN_DEFAULTS.microBatch),
    method,
    numPrompts: spec.prompts,
    rank: spec.rank,
    layers: method === "full" ? undefined : spec.layers,
    loraR: spec.loraR,
    loraTargets: spec.loraTargets ? parseTargets(spec.loraTargets, "loraTargets") : undefined,
  });
}

/** The run's estimate against `free`; undefined when the model cannot be read (preflight reports that). */
export function checkTrainingFit(spec: RunSpec, free = freeMemory()): FitCheck | undefined {
  let estimate: MemoryEstimate;
  try {
    estimate = trainingEstimate(spec);
  } catch {
    return undefined;
  }
  if (fits(estimate.total, free)) return { estimate, free, fits: true };
  const q4 = spec.weights !== "q4" && methodOf(spec) !== "full" ? trainingEstimate(spec, "q4") : undefined;
  const withQ4 = q4 && fits(q4.total, free) ? q4 : undefined;
  return { estimate, free, fits: false, withQ4, message: fitMessage(estimate, free, q4) };
}

/** "Training needs about 14.5 GiB, and 7.81 GiB is free: …" with the largest parts and what would help. */
export function fitMessage(e: MemoryEstimate, free: number, q4?: MemoryEstimate): string {
  const parts: [string, number][] = [
    ["weights", e.weights + e.decodeCopy],
    [`activations at ${e.batch} × ${e.context} tokens`, e.activations],
    ["adapter and optimizer", e.optimizer],
    ["caches and runtime", e.kvCache + e.overhead],
  ];
  const largest = parts
    .filter(([, b]) => b > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 2)
    .map(([k, b]) => `${k} ${fmtBytes(b)}`);
  const help = [
    q4 ? `4-bit weights (--weights q4) would need about ${fmtBytes(q4.total)}` : undefined,
    e.activations > e.weights ? "a shorter max length or a smaller batch shrinks the activations" : undefined,
  ].filter((x): x is string => x !== undefined);
  return `This training needs about ${fmtBytes(e.total)} of memory (${largest.join(", ")}), but ${fmtBytes(free)} is free: it may run out of memory and stop.${help.length ? ` ${help.join("; ")}.` : ""}`;
}
