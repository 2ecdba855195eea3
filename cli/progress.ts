/**
 * How `excitor train` shows a run on stderr: a cli-progress bar (step/total, loss, lr, tokens/s,
 * ETA) with validation, checkpoint and warning lines printed above it. When stderr is not a
 * terminal (CI logs, `2> file`) a redrawn bar would be garbage, so it prints a plain status line
 * about every 5 % of the run instead.
 */
import { MultiBar, Presets, type SingleBar } from "cli-progress";
import type { RetentionMeasure, TrainEvent } from "../engine/train/events";
import { fmtDuration, fmtInt } from "./format";

export interface TrainReporter {
  onEvent(e: TrainEvent): void;
  /** Prints a line above the bar. */
  log(line: string): void;
  stop(): void;
}

export function trainReporter(stream: NodeJS.WriteStream = process.stderr): TrainReporter {
  return stream.isTTY ? new BarReporter(stream) : new LineReporter(stream);
}

/** The forgetting monitor's reading: "KL 0.0123 · ppl ×1.04" (KL(base ‖ tuned) per token, tuned/base perplexity). */
export function keptKnowledge(r: RetentionMeasure): string {
  return `KL ${r.kl.toFixed(4)} · ppl ×${r.pplRatio.toFixed(2)}`;
}

/** Lines that both reporters print for the non-step events. */
function describe(e: TrainEvent): string | undefined {
  switch (e.type) {
    case "start":
      return (
        `training on ${e.trainExamples} examples (${e.validationExamples} for validation), ${e.totalSteps} steps ` +
        `of ${e.effectiveBatch}, ${fmtInt(e.trainableParams)} trainable parameters ${where(e)}, backend ${e.backend}` +
        (e.resumedFromStep > 0 ? `; resuming after step ${e.resumedFromStep}` : "") +
        (e.retention ? `\nforgetting monitor: ${e.retention.samples} retention samples (${fmtInt(e.retention.tokens)} tokens, ${e.retention.source}) in ${e.retention.file}` : "") +
        (e.backendNote ? `\nbackend: ${e.backendNote}` : "")
      );
    case "validation":
      return `step ${e.step}: validation loss ${e.loss.toFixed(4)}` + (e.retention ? ` | kept knowledge: ${keptKnowledge(e.retention)}` : "");
    case "checkpoint":
      return `step ${e.step}: checkpoint saved in ${e.dir}`;
    case "log":
      return e.level === "warn" ? `warning: ${e.message}` : e.message;
    default:
      return undefined;
  }
}

/** Where the trained parameters are: "in layers 0,1 (Excitor)", "in layers 0,1 (LoRA)", "(full fine-tuning: every weight)". */
function where(e: Extract<TrainEvent, { type: "start" }>): string {
  if (e.method === "full") return "(full fine-tuning: every weight)";
  return `in layers ${e.layers.join(",")}` + (e.method === "lora" ? " (LoRA)" : "");
}

type StepEvent = Extract<TrainEvent, { type: "step" }>;

function payload(e?: StepEvent) {
  return {
    loss: e ? e.loss.toFixed(4) : "-",
    lr: e ? e.learningRate.toExponential(2) : "-",
    tps: e ? Math.round(e.tokensPerSecond).toString() : "-",
    etaText: e ? fmtDuration(e.etaSeconds) : "-",
  };
}

class BarReporter implements TrainReporter {
  private readonly multi: MultiBar;
  private bar: SingleBar | undefined;
  private stopped = false;

  constructor(stream: NodeJS.WriteStream) {
    this.multi = new MultiBar(
      {
        stream,
        format: "{bar} {value}/{total} steps | loss {loss} | lr {lr} | {tps} tok/s | ETA {etaText}",
        barsize: 24,
        hideCursor: true,
        forceRedraw: true, // redraw after log lines even when the bar itself has not changed
        gracefulExit: false,
      },
      Presets.shades_classic,
    );
  }

  onEvent(e: TrainEvent): void {
    const line = describe(e);
    if (line) this.log(line);
    if (e.type === "start") this.bar = this.multi.create(e.totalSteps, e.resumedFromStep, payload());
    // Redraw now: the trainer may not yield to the timer that would redraw later.
    if (e.type === "step") this.bar?.update(e.step, payload(e));
    this.multi.update();
  }

  log(line: string): void {
    this.multi.log(line + "\n");
  }

  stop(): void {
    if (this.stopped || !this.bar) return; // never started: nothing drawn, nothing to close
    this.stopped = true;
    this.multi.update(); // flushes pending log lines
    this.multi.stop();
  }
}

class LineReporter implements TrainReporter {
  private every = 1;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  onEvent(e: TrainEvent): void {
    const line = describe(e);
    if (line) this.log(line);
    if (e.type === "start") this.every = Math.max(1, Math.round(e.totalSteps / 20));
    if (e.type === "step" && (e.step % this.every === 0 || e.step === e.totalSteps)) {
      const p = payload(e);
      this.log(`step ${e.step}/${e.totalSteps} | loss ${p.loss} | lr ${p.lr} | ${p.tps} tok/s | ETA ${p.etaText}`);
    }
  }

  log(line: string): void {
    this.stream.write(line + "\n");
  }

  stop(): void {}
}
