import type { SamplingOptions } from "../engine/generate/sampler";
/**
 * Command-line values → typed, checked values. Numbers are parsed here rather than left to the
 * engine so that `--max-tokens abc` fails at once, before a model is loaded, with a message that
 * names the option (`--max-tokens: "abc" is not a number`). Failures are ExcitorInputErrors,
 * which the error path turns into a one-line message and exit code 2.
 */
import { Option, type Command } from "commander";
import { ExcitorInputError } from "../engine/errors";
import { numberProblem, type NumberRule } from "../engine/option-ranges";
import type { HeldPrecision } from "../engine/model/memory";

export type { NumberRule };

/** Token ids and layer indices: whole numbers an Int32Array holds (the model then checks its own bounds). */
const LIST_ITEM: NumberRule = { integer: true, min: 0, max: 2 ** 31 - 1 };

/** Every number option has a range (engine/option-ranges.ts); the message says it: `--rank: "5000" must be between 1 and 4096`. */
export function parseNumber(flag: string, raw: string, rule: NumberRule = {}): number {
  const text = raw.trim();
  const problem = numberProblem(text === "" ? NaN : Number(text), rule);
  if (problem) throw new ExcitorInputError(`${flag}: "${raw}" ${problem}`);
  return Number(text);
}

/** "1,2,3" (or "[1, 2, 3]") → [1, 2, 3], each a whole number ≥ 0. */
export function parseIntList(flag: string, raw: string): number[] {
  const body = raw.trim().replace(/^\[|\]$/g, "").trim();
  if (body === "") throw new ExcitorInputError(`${flag}: expected a comma-separated list of whole numbers, got "${raw}"`);
  return body.split(/[\s,]+/).map((part) => parseNumber(flag, part, LIST_ITEM));
}

/** A number-valued option whose parser names the option in its error messages. */
export function numberOption(flags: string, description: string, rule: NumberRule, defaultValue?: number): Option {
  const opt = new Option(flags, description);
  opt.argParser((v: string) => parseNumber(opt.long ?? flags, v, rule));
  if (defaultValue !== undefined) opt.default(defaultValue);
  return opt;
}

/** An option holding a list of ids / layer indices ("1,2,3"). */
export function intListOption(flags: string, description: string): Option {
  const opt = new Option(flags, description);
  return opt.argParser((v: string) => parseIntList(opt.long ?? flags, v));
}

/** An option that may be given several times (`--stop A --stop B`). */
export function repeatableOption(flags: string, description: string): Option {
  return new Option(flags, description).argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]).default([], "none");
}

const HELD = ["stored", "f32", "q8", "q4"] as const;

/** --weights: f32, q8 or q4 ("stored", the default, may be given too); anything else is refused naming the choices. */
export function parseWeights(raw: string): HeldPrecision {
  const v = raw.trim().toLowerCase();
  if ((HELD as readonly string[]).includes(v)) return v as HeldPrecision;
  throw new ExcitorInputError(`--weights: "${raw}" is not a precision; use f32, q8 or q4 (or leave --weights out to hold the weights as the model stores them)`);
}

export const TEMPLATES = ["alpaca", "chat", "none"] as const;
export type TemplateName = (typeof TEMPLATES)[number];

export function templateOption(description: string, defaultValue?: TemplateName): Option {
  const opt = new Option("--template <name>", description).choices(TEMPLATES);
  return defaultValue === undefined ? opt : opt.default(defaultValue);
}

/**
 * Wraps a command body for commander: the body returns the exit code, which `setCode` hands to
 * main() (commander ignores an action's return value). Commander passes the Command last.
 */
export type Runner = (body: (cmd: Command) => Promise<number>) => (...args: unknown[]) => Promise<void>;

export function makeRunner(setCode: (code: number) => void): Runner {
  return (body) =>
    async (...args) => {
      setCode(await body(args[args.length - 1] as Command));
    };
}

/** The sampling options `generate` and `chat` share, as the engine takes them. */
export function samplingFrom(o: SamplingOptions): SamplingOptions {
  return { temperature: o.temperature, topP: o.topP, topK: o.topK, repetitionPenalty: o.repetitionPenalty, seed: o.seed };
}
