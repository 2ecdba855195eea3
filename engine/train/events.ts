import type { LearningVerdict } from "./verdict";

/** What a training run reports as it goes; the terminal progress bar and the VS Code panel both consume this. */
export type TrainEvent =
  | {
      type: "start";
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
  | { type: "validation"; step: number; loss: number }
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
    }
  | { type: "cancelled"; step: number; adapterDir: string };
