/**
 * `excitor generate`: one prompt → the continuation on stdout, streamed as it is produced and
 * nothing else there (scripts compare it byte for byte), then one newline. Greedy at
 * --temperature 0; the repetition penalty defaults to 1 (off) so that raw greedy output matches
 * reference implementations. Ctrl-C stops generation cleanly and exits 130.
 */
import type { Command } from "commander";
import type { SamplingOptions } from "../../engine/generate/sampler";
import { generate } from "../../engine/generate/generate";
import { DEFAULT_SAMPLING } from "../../engine/generate/sampler";
import { ExcitorInputError } from "../../engine/errors";
import type { HeldPrecision } from "../../engine/model/memory";
import { openModel, type BackendChoice } from "../../engine/load";
import { EXIT } from "../errors";
import { SAMPLING_RANGES as R } from "../../engine/option-ranges";
import { numberOption, repeatableOption, templateOption, type Runner, type TemplateName, samplingFrom } from "../options";
import { promptIds } from "../prompt";
import { attachAdapter, checkIds, imageOptions, interruptSignal, modelOptions, openPicture, openTokenizer } from "../session";

interface Opts extends SamplingOptions {
  model: string;
  adapter?: string;
  image?: string;
  vision?: string;
  backend: BackendChoice;
  weights: HeldPrecision;
  prompt: string;
  input?: string;
  template: TemplateName;
  maxTokens: number;
  stop: string[];
  verbose?: boolean;
}

/** Sampling options shared with `chat`. */
export function samplingOptions(cmd: Command, maxTokens: number, repetitionPenalty: number): Command {
  const S = DEFAULT_SAMPLING;
  return cmd
    .addOption(numberOption("--max-tokens <n>", "most tokens to generate", R.maxTokens, maxTokens))
    .addOption(numberOption("--temperature <t>", "sampling temperature (0: greedy)", R.temperature, S.temperature))
    .addOption(numberOption("--top-p <p>", "nucleus sampling mass (1: off)", R.topP, S.topP))
    .addOption(numberOption("--top-k <k>", "sample among the k most likely tokens (0: off)", R.topK, S.topK))
    .addOption(numberOption("--repetition-penalty <x>", "penalty on tokens already in the context (1: off)", R.repetitionPenalty, repetitionPenalty))
    .addOption(numberOption("--seed <n>", "sampling seed", R.seed, S.seed));
}

export function registerGenerate(program: Command, run: Runner): void {
  const cmd = imageOptions(modelOptions(program.command("generate").description("continue a prompt; prints only the generated text")))
    .option("--prompt <text>", 'the prompt ("" starts from BOS)', "")
    .option("--input <text>", "with --template alpaca or chat: the context the prompt is about (Alpaca's Input, e.g. a story)")
    .addOption(templateOption("prompt format: alpaca, chat (the tokenizer's chat template) or none", "none"));
  samplingOptions(cmd, 256, 1.0)
    .addOption(repeatableOption("--stop <text>", "stop before this text (repeatable)"))
    .option("--verbose", "print the finish reason and speed on stderr")
    .action(run(async (c) => generateCommand(c.optsWithGlobals<Opts>())));
}

async function generateCommand(o: Opts): Promise<number> {
  if (o.input !== undefined && o.template === "none") throw new ExcitorInputError("--input is the Alpaca prompt's Input field; give --template alpaca (or chat) too");
  const tok = openTokenizer(o.model);
  const rt = await openModel(o.model, { backend: o.backend, weights: o.weights });
  const interrupt = interruptSignal();
  try {
    const adapter = attachAdapter(rt, o.adapter);
    const picture = await openPicture(rt, adapter, o);
    picture.encoder?.dispose();
    const ids = promptIds(tok, o.prompt, o.template, o.input);
    checkIds(ids, rt.config.vocabSize, "--prompt", tok);
    if (ids.length >= rt.config.maxPositions)
      throw new ExcitorInputError(`--prompt: the prompt is ${ids.length} tokens; the model's context holds ${rt.config.maxPositions}`);
    const result = await generate(rt, tok, ids, {
      maxTokens: o.maxTokens,
      ...samplingFrom(o),
      stop: o.stop,
      signal: interrupt.signal,
      useAdapter: adapter !== null,
      image: picture.features,
      onText: (delta) => process.stdout.write(delta),
    });
    process.stdout.write("\n");
    if (o.verbose)
      process.stderr.write(`finish: ${result.finishReason}, ${result.ids.length} tokens, ${result.tokensPerSecond.toFixed(1)} tokens/s\n`);
    return result.finishReason === "aborted" ? EXIT.interrupted : EXIT.ok;
  } finally {
    interrupt.dispose();
    rt.dispose();
  }
}
