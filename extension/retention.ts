/**
 * Kept knowledge: how far a run's tuned model has moved from the base on the retention set (text
 * the base model knows), as the engine measures it at each validation (KL(base ‖ tuned) per
 * token, and the tuned / base perplexity ratio). The training panel charts it and the Runs view's
 * tooltip states the last value. No vscode, no DOM, no Node: the webview bundles it.
 */
import type { RetentionMeasure, TrainEvent } from "../engine/train/events";
import { runProgress } from "./train-history";

type Start = Extract<TrainEvent, { type: "start" }>;

export interface RunRetention {
  /** The retention set of the latest segment; undefined when the run does not measure (--retain none, or older runs). */
  set: Start["retention"];
  /** [step, KL in nats per token] at each validation that measured it, each step once across Resumes. */
  kl: [number, number][];
  /** The latest measurement (the last validation's, or the done event's). */
  last: RetentionMeasure | undefined;
  /** Whether the run has started (a run with no start event yet has not said whether it measures). */
  started: boolean;
}

export function runRetention(events: readonly TrainEvent[]): RunRetention {
  const start = events.filter((e): e is Start => e.type === "start").at(-1);
  const measured = runProgress(events).validations.filter((v) => v.retention !== undefined);
  const done = events.filter((e): e is Extract<TrainEvent, { type: "done" }> => e.type === "done").at(-1);
  const kl = measured.map((v): [number, number] => [v.step, v.retention!.kl]);
  // A run without validation examples measures once, at the end.
  if (kl.length === 0 && done?.retention) kl.push([done.step, done.retention.kl]);
  return {
    set: start?.retention,
    kl,
    last: measured.at(-1)?.retention ?? done?.retention,
    started: start !== undefined,
  };
}

/** "×1.04": a perplexity ratio, two decimals (three below 1.01, where the difference is the point). */
export function fmtRatio(r: number): string {
  return `×${Math.abs(r - 1) < 0.01 ? r.toFixed(3) : r.toFixed(2)}`;
}

/** "0.0123": a KL in nats per token, three significant digits. */
export function fmtKl(kl: number): string {
  return kl === 0 ? "0" : Math.abs(kl) < 1e-4 ? kl.toExponential(1) : String(Number(kl.toPrecision(3)));
}

/** "ppl ×1.04 on the retention set": the latest perplexity ratio, as the panel shows it under the chart. */
export function pplText(m: RetentionMeasure): string {
  return `ppl ${fmtRatio(m.pplRatio)} on the retention set`;
}

/** Where the retention set comes from, in words. */
export function retentionSource(set: NonNullable<Start["retention"]>): string {
  const base = `${set.samples} samples of the base model`;
  const file = set.file ? set.file.split(/[\\/]/).at(-1) : "a file";
  const from = set.source === "base" ? base : set.source === "file" ? file : `${base} and ${file}`;
  return `${from}, ${set.tokens} tokens`;
}

/**
 * One line for the Runs view's tooltip: "kept knowledge: KL to base 0.0123 nats/token, ppl ×1.04
 * on the retention set", or why there is no number; undefined before the run has started.
 */
export function keptKnowledgeLine(r: RunRetention): string | undefined {
  if (!r.started) return undefined;
  if (r.last) return `kept knowledge: KL to base ${fmtKl(r.last.kl)} nats/token, ${pplText(r.last)}`;
  if (r.set) return "kept knowledge: measured at the first validation";
  return "kept knowledge: not measured (no retention set)";
}
