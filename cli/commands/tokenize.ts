/**
 * `excitor tokenize`: text → ids with the model's tokenizer, BOS as its config says (the same
 * ids `score --text` and training use). Only the tokenizer is loaded, not the weights.
 */
import type { Command } from "commander";
import { EXIT } from "../errors";
import type { Runner } from "../options";
import { modelOptions, openTokenizer } from "../session";

interface Opts {
  model: string;
  text: string;
  bos: boolean;
  json?: boolean;
}

export function registerTokenize(program: Command, run: Runner): void {
  modelOptions(program.command("tokenize").description("show the token ids of a text"), false, false)
    .requiredOption("--text <text>", "text to tokenize")
    .option("--no-bos", "do not put BOS in front (default: as the tokenizer config says)")
    .option("--json", 'print one JSON line {"ids": [...]}')
    .action(run(async (c) => tokenizeCommand(c.optsWithGlobals<Opts>())));
}

async function tokenizeCommand(o: Opts): Promise<number> {
  const tok = openTokenizer(o.model);
  const ids = tok.encode(o.text, { bos: o.bos ? undefined : false });
  if (o.json) {
    process.stdout.write(JSON.stringify({ ids }) + "\n");
    return EXIT.ok;
  }
  process.stdout.write(`${ids.length} tokens\n`);
  for (const id of ids) process.stdout.write(`${String(id).padStart(7)}  ${JSON.stringify(tok.idToToken(id) ?? "")}\n`);
  return EXIT.ok;
}
