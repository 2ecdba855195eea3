/** The golden GQA model made trainable from text: a tokenizer that fits its vocabulary, and a small Alpaca task. */
import * as fs from "node:fs";
import * as path from "node:path";
import { FIXTURES } from "../fixtures";
import { tinyTokenizerJson } from "./tiny-model";

export const GOLDEN = path.join(FIXTURES, "golden/gqa");

/**
 * The golden GQA checkpoint (vocabulary 130) with a character tokenizer that fits it (78 tokens,
 * unknown characters as <unk>), and an Alpaca copy task.
 */
export function goldenWithTokenizer(root: string): { model: string; data: string } {
  const model = path.join(root, "golden");
  fs.mkdirSync(model);
  for (const f of ["config.json", "model.safetensors"]) fs.copyFileSync(path.join(GOLDEN, "model", f), path.join(model, f));
  const { tokenizer, config } = tinyTokenizerJson() as { tokenizer: { model: { vocab: Record<string, number>; byte_fallback: boolean } }; config: object };
  const vocab: Record<string, number> = {};
  for (const piece of Object.keys(tokenizer.model.vocab)) if (!piece.startsWith("<0x")) vocab[piece] = Object.keys(vocab).length;
  tokenizer.model.vocab = vocab;
  tokenizer.model.byte_fallback = false;
  fs.writeFileSync(path.join(model, "tokenizer.json"), JSON.stringify(tokenizer));
  fs.writeFileSync(path.join(model, "tokenizer_config.json"), JSON.stringify(config));
  const names = ["lily", "tom", "sue", "ben", "max", "anna", "sam", "mia"];
  const things = ["cat", "dog", "ball", "tree", "car", "cake", "bird", "box"];
  const data = path.join(root, "copy.jsonl");
  const recs = Array.from({ length: 30 }, (_, i) => {
    const s = `${names[i % 8]} saw a ${things[(i * 3) % 8]}`;
    return JSON.stringify({ instruction: "say it again.", input: s, output: s });
  });
  fs.writeFileSync(data, recs.join("\n") + "\n");
  return { model, data };
}

