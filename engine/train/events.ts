import type { TuningMethod } from "../adapters";
import type { LearningVerdict } from "./verdict";

/**
 * How far the tuned model has moved from the base on the retention set (text the base model
 * knows: by default its own samples). Measured at every validation.
 */
export interface RetentionMeasure {
  /** Mean per-token KL(base ‖ tuned) in nats over the retention set's next-token distributions. */
  kl: number;
  /** Tuned / base perplexity on the retention set's tokens (1 = nothing lost). */
  pplRatio: number;
}

/** What a training run reports as it goes; the terminal progress bar and the VS Code panel both consume this. */
export type TrainEvent =
  | {
      type: "start";
      /** What is trained (absent in runs recorded before it was added: "excitor"). */
      method?: TuningMethod;
      totalSteps: number;
      stepsPerEpoch: number;
      epochs: number;
      trainExamples: number;
      validationExamples: number;
      /** Examples cut to maxLength (their tails are not learned). */
      truncatedExamples: number;
      trainableParams: number;
      baseParams: number;
      backend: string;
      /** Why this backend runs and not a faster one (absent in runs recorded before it was added). */
      backendNote?: string;
      layers: number[];
      learningRate: number;
      effectiveBatch: number;
      resumedFromStep: number;
      outDir: string;
      /** The retention set the forgetting monitor uses; absent with `--retain none` (and in older runs). */
      retention?: { samples: number; tokens: number; source: "base" | "file" | "base+file"; file: string };
    }
  | {
      type: "step";
      step: number;
      totalSteps: number;
      /** Fractional epoch, e.g. 1.5 = halfway through the second epoch. */
      epoch: number;
      loss: number;
      learningRate: number;
      gradNorm: number;
      tokensPerSecond: number;
      elapsedSeconds: number;
      etaSeconds: number;
      /** Gate values per adapted layer, [layers][H], in the order of `layers`. */
      gates: number[][];
    }
  | { type: "validation"; step: number; loss: number; retention?: RetentionMeasure }
  | { type: "checkpoint"; step: number; dir: string }
  | { type: "log"; level: "info" | "warn"; message: string }
  | {
      type: "done";
      step: number;
      loss: number;
      validationLoss?: number;
      elapsedSeconds: number;
      adapterDir: string;
      /** Whether the training loss fell, in words (absent for runs of fewer than 4 steps, and in older runs). */
      verdict?: LearningVerdict;
      /** The last retention measurement (the final validation's), absent with `--retain none`. */
      retention?: RetentionMeasure;
      /** Seconds this run's forgetting monitor took (making its set, every measure), with `retention`. */
      monitorSeconds?: number;
    }
  | { type: "cancelled"; step: number; adapterDir: string };
