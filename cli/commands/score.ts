/**
 * `excitor score`: log-probabilities of a token sequence under the model (with the adapter if
 * given). `--json` prints exactly one line `{"ids","logprobs","perplexity"}`, which external
 * tools compare against reference implementations; logprobs[i] = log p(ids[i+1] | ids[0..i]).
 * With --ids no tokenizer is needed, so bare checkpoints (config + weights) can be scored.
 */
import * as fs from "node:fs";
import type { Command } from "commander";
import { ExcitorInputError } from "../../engine/errors";
import type { HeldPrecision } from "../../engine/model/memory";
import { openModel, type BackendChoice } from "../../engine/load";
import { scoreIds } from "../../engine/score";
import { EXIT } from "../errors";
import { intListOption, type Runner } from "../options";
import { attachAdapter, checkIds, imageOptions, modelOptions, openPicture, openTokenizer } from "../session";

interface Opts {
  model: string;
  adapter?: string;
  image?: string;
  vision?: string;
  backend: BackendChoice;
  weights: HeldPrecision;
  ids?: number[];
  text?: string;
  file?: string;
  json?: boolean;
}

export function registerScore(program: Command, run: Runner): void {
  imageOptions(modelOptions(program.command("score").description("log-probabilities and perplexity of a text or of token ids")))
    .addOption(intListOption("--ids <list>", "token ids to score, e.g. 1,2,3"))
    .option("--text <text>", "text to tokenize (BOS as the tokenizer config says) and score")
    .option("--file <path>", "text file to tokenize and score")
    .option("--json", 'print one JSON line {"ids","logprobs","perplexity"}')
    .action(run(async (c) => scoreCommand(c.optsWithGlobals<Opts>())));
}

async function scoreCommand(o: Opts): Promise<number> {
  const given = [o.ids && "--ids", o.text !== undefined && "--text", o.file !== undefined && "--file"].filter(Boolean);
  if (given.length !== 1)
    throw new ExcitorInputError(given.length ? `give only one of ${given.join(", ")}` : "nothing to score: give --ids, --text or --file");
  const tok = o.ids ? undefined : openTokenizer(o.model);
  const ids = o.ids ?? tok!.encode(o.text ?? readText(o.file!));
  if (ids.length < 2) throw new ExcitorInputError(`${given[0]}: need at least 2 tokens to score, got ${ids.length}`);
  const rt = await openModel(o.model, { backend: o.backend, weights: o.weights });
  try {
    checkIds(ids, rt.config.vocabSize, given[0] as string, tok);
    const adapter = attachAdapter(rt, o.adapter);
    const picture = await openPicture(rt, adapter, o);
    picture.encoder?.dispose();
    const r = await scoreIds(rt, ids, adapter !== null, undefined, picture.features);
    const logprobs = Array.from(r.logprobs, Number);
    if (o.json) process.stdout.write(JSON.stringify({ ids: r.ids, logprobs, perplexity: r.perplexity }) + "\n");
    else {
      const mean = logprobs.reduce((a, b) => a + b, 0) / logprobs.length;
      process.stdout.write(
        `perplexity  ${r.perplexity.toFixed(4)}\n` +
          `tokens      ${ids.length} (${logprobs.length} predicted)\n` +
          `mean logprob ${mean.toFixed(4)} nats/token${adapter ? " (with adapter)" : ""}\n`,
      );
    }
    return EXIT.ok;
  } finally {
    rt.dispose();
  }
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ExcitorInputError(`${file}: ${code === "ENOENT" ? "file not found" : `cannot read (${code ?? (e as Error).message})`}`, file);
  }
}
