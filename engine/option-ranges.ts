/**
 * The ranges of the numbers a user sets: one table read by the CLI's option parser, the trainer's
 * own check (for callers that are not the CLI) and the editor's settings and Custom form, so the
 * same number is accepted or refused everywhere with the same words. Bounds are where a value
 * stops making sense or would ask for absurd memory (`--rank 1000000000` once tried to allocate
 * 128 billion floats), with room to spare for real models.
 */
import { ExcitorInputError } from "./errors";

/** What a number accepts; every field is optional. */
export interface NumberRule {
  integer?: boolean;
  /** Smallest allowed value (inclusive). */
  min?: number;
  /** The value must be above this (exclusive). */
  above?: number;
  /** The value must be below this (exclusive). */
  below?: number;
  /** Largest allowed value (inclusive). */
  max?: number;
}

/** A rule with the command-line option that sets the value, for messages. */
export interface OptionRange extends NumberRule {
  flag: string;
}

/** A whole number from min to max (both typed as present, for readers that need both bounds). */
const int = (flag: string, min: number, max: number) => ({ flag, integer: true, min, max });

/** Random seeds: what the generator's 32-bit state takes. */
const SEED_MAX = 2 ** 32 - 1;
/** Longest context a LLaMA model of today has; longer max lengths or answers cannot be run. */
const CONTEXT_MAX = 131_072;
const STEPS_MAX = 10_000_000;

/** Training options, by their TrainOptions names. */
export const TRAIN_RANGES = {
  epochs: int("--epochs", 1, 1000),
  maxSteps: int("--max-steps", 1, STEPS_MAX),
  batchSize: int("--batch-size", 1, 4096),
  microBatch: int("--micro-batch", 1, 4096),
  learningRate: { flag: "--lr", above: 0, max: 1 },
  numPrompts: int("--prompts", 1, 1024),
  /** Also at most the model's hidden size (checkModelRanges). */
  rank: int("--rank", 1, 4096),
  loraR: int("--lora-r", 1, 4096),
  loraAlpha: { flag: "--lora-alpha", above: 0, max: 1e6 },
  maxLength: int("--max-length", 2, CONTEXT_MAX),
  validationShare: { flag: "--validation-share", min: 0, max: 0.99 },
  seed: int("--seed", 0, SEED_MAX),
  checkpointEvery: int("--checkpoint-every", 0, STEPS_MAX),
  evalEvery: int("--eval-every", 0, STEPS_MAX),
  warmupShare: { flag: "--warmup-share", min: 0, below: 1 },
  weightDecay: { flag: "--weight-decay", min: 0, max: 1 },
  gradClip: { flag: "--grad-clip", min: 0, max: 1e6 },
  retainWeight: { flag: "--retain-weight", min: 0, max: 100 },
  /** Which encoder layer a multimodal adapter reads; also at least minus the encoder's layer count (VisionEncoder.load). */
  visionLayer: int("--vision-layer", -1024, -1),
} satisfies Record<string, OptionRange>;

/** Sampling options of generate and chat. */
export const SAMPLING_RANGES = {
  maxTokens: int("--max-tokens", 1, CONTEXT_MAX),
  temperature: { flag: "--temperature", min: 0, max: 5 },
  topP: { flag: "--top-p", above: 0, max: 1 },
  /** More than any vocabulary has is the same as off. */
  topK: int("--top-k", 0, 1_000_000),
  repetitionPenalty: { flag: "--repetition-penalty", above: 0, max: 10 },
  seed: int("--seed", 0, SEED_MAX),
} satisfies Record<string, OptionRange>;

/** Options of `excitor compare` that training does not have. */
export const COMPARE_RANGES = {
  attentionRecords: int("--attention-records", 0, 10_000),
} satisfies Record<string, OptionRange>;

/** The allowed values in words: "between 1 and 4096", "greater than 0 and at most 1", "at least 0 and below 1". */
export function rangeText(rule: NumberRule): string {
  const low = rule.min !== undefined ? `at least ${rule.min}` : rule.above !== undefined ? `greater than ${rule.above}` : undefined;
  const high = rule.max !== undefined ? `at most ${rule.max}` : rule.below !== undefined ? `below ${rule.below}` : undefined;
  if (rule.min !== undefined && rule.max !== undefined) return `between ${rule.min} and ${rule.max}`;
  return [low, high].filter(Boolean).join(" and ") || "any number";
}

/** What is wrong with `n` under `rule` ("is not a whole number", "must be between 1 and 4096"), or undefined. */
export function numberProblem(n: number, rule: NumberRule): string | undefined {
  if (!Number.isFinite(n)) return "is not a number";
  if (rule.integer && !Number.isInteger(n)) return "is not a whole number";
  const outside =
    (rule.min !== undefined && n < rule.min) ||
    (rule.above !== undefined && n <= rule.above) ||
    (rule.below !== undefined && n >= rule.below) ||
    (rule.max !== undefined && n > rule.max);
  return outside ? `must be ${rangeText(rule)}` : undefined;
}

/** Checks every training number that is set; the message names the option (`--rank: 5000 must be between 1 and 4096`). */
export function checkTrainRanges(o: { [K in keyof typeof TRAIN_RANGES]?: number }): void {
  for (const [key, range] of Object.entries(TRAIN_RANGES) as [keyof typeof TRAIN_RANGES, OptionRange][]) {
    const v = o[key];
    const problem = v === undefined ? undefined : numberProblem(v, range);
    if (problem) throw new ExcitorInputError(`${range.flag}: ${v} ${problem}`);
  }
}

/**
 * The limits that depend on the model, checked once its config.json is read: the Excitor query
 * projects the hidden state down to `rank` dimensions, so a rank above the hidden size adds
 * nothing but memory. (LoRA's rank keeps its fixed cap: the comparison picks ranks by parameter
 * count, which may pass a small model's hidden size.)
 */
export function checkModelRanges(o: { rank?: number }, model: { hiddenSize: number }): void {
  if (o.rank !== undefined && o.rank > model.hiddenSize) {
    throw new ExcitorInputError(`${TRAIN_RANGES.rank.flag}: ${o.rank} must be at most the model's hidden size, ${model.hiddenSize} (hidden_size in config.json)`);
  }
}
