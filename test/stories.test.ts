/** A real pretrained LLaMA (stories260K): greedy generation reproduces llama2.c's output. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { FIXTURES } from "./fixtures";
import { openModel } from "../engine/load";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { generate } from "../engine/generate/generate";

const dir = path.join(FIXTURES, "stories260k");

test("stories260k: greedy generation from BOS reproduces expected-greedy.txt", async () => {
  const rt = await openModel(path.join(dir, "hf"));
  const tok = TextTokenizer.fromFolder(path.join(dir, "hf"));
  const expected = fs.readFileSync(path.join(dir, "expected-greedy.txt"), "utf8").trimEnd();
  let streamed = "";
  // llama2.c (steps = 256) samples one token at each of positions 0..255, BOS at position 0.
  const out = await generate(rt, tok, [], { maxTokens: 256, temperature: 0, repetitionPenalty: 1, onText: (d) => (streamed += d) });
  assert.equal(out.text.trimEnd(), expected);
  assert.equal(streamed, out.text, "streamed deltas add up to the result");
  rt.dispose();
});
