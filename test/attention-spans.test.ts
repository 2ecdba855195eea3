/**
 * The attention report tells the prompt format's boilerplate from the user's instruction, the
 * input and the response, so the heatmap can mark them and the per-layer chart can measure the
 * response's attention on the user's own words. Checked on real tokenizers (the demo's BPE and a
 * SentencePiece one, with their merges), for Alpaca records with and without input and for a
 * chat template.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { attentionReport } from "../engine/analysis/attention";
import { tokenSpans, type TokenSpan } from "../engine/analysis/spans";
import { alpacaPrompt, alpacaPromptPieces } from "../engine/data/templates";
import { openModel } from "../engine/load";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { promptPieces } from "../cli/prompt-pieces";
import { CHATML_TEMPLATE, FIXTURES, tinyByteLevelTokenizer } from "./fixtures";
import { tempDir } from "./helpers/tiny-model";

const DEMO = path.resolve(__dirname, "../../demo/model");
const demo = TextTokenizer.fromFolder(DEMO);
const stories = TextTokenizer.fromFolder(path.join(FIXTURES, "stories260k/hf"));

const INSTRUCTION = "What is the name of the bird?";
const INPUT = "One day, a brave bird named Sue went to the town. The bird lived near the town.";
const RESPONSE = " The bird was named Sue.";

const text = (tok: TextTokenizer, ids: number[], s: TokenSpan) => tok.decode(ids.slice(s.start, s.end), { skipSpecial: true });

/** Spans are in order, touch each other and cover every token. */
function assertCovers(spans: TokenSpan[], length: number): void {
  assert.equal(spans[0].start, 0);
  for (let i = 1; i < spans.length; i++) assert.equal(spans[i].start, spans[i - 1].end, `span ${i} starts where span ${i - 1} ends`);
  assert.equal(spans[spans.length - 1].end, length);
  for (const s of spans) assert.ok(s.end > s.start, `no empty span (${JSON.stringify(s)})`);
}

test("Alpaca pieces join to exactly the Alpaca prompt, with and without input", () => {
  assert.equal(alpacaPromptPieces(INSTRUCTION, INPUT).map((p) => p.text).join(""), alpacaPrompt(INSTRUCTION, INPUT));
  assert.equal(alpacaPromptPieces(INSTRUCTION).map((p) => p.text).join(""), alpacaPrompt(INSTRUCTION));
  assert.equal(alpacaPromptPieces(INSTRUCTION, "").map((p) => p.text).join(""), alpacaPrompt(INSTRUCTION, ""));
});

test("an Alpaca record with input: template, instruction, template, input, template, response", () => {
  for (const tok of [demo, stories]) {
    const prompt = tok.encode(alpacaPrompt(INSTRUCTION, INPUT), { bos: true, eos: false });
    const response = tok.encode(alpacaPrompt(INSTRUCTION, INPUT) + RESPONSE, { bos: true, eos: false }).slice(prompt.length);
    const ids = prompt.concat(response);
    const spans = tokenSpans(tok, prompt, response.length, alpacaPromptPieces(INSTRUCTION, INPUT));
    assertCovers(spans, ids.length);
    assert.deepEqual(spans.map((s) => s.kind), ["template", "instruction", "template", "input", "template", "response"]);
    const [head, inst, mid, input, tail, resp] = spans;
    assert.equal(head.start, 0, "BOS is template");
    assert.ok(text(tok, ids, head).startsWith("Below is an instruction that describes a task, paired with an input"));
    assert.ok(text(tok, ids, head).trimEnd().endsWith("### Instruction:"));
    assert.equal(text(tok, ids, inst).trim(), INSTRUCTION);
    assert.equal(text(tok, ids, mid).trim(), "### Input:");
    assert.equal(text(tok, ids, input).trim(), INPUT);
    assert.equal(text(tok, ids, tail).trim(), "### Response:");
    assert.equal(text(tok, ids, resp).trim(), RESPONSE.trim());
    assert.equal(resp.start, prompt.length);
  }
});

test("an Alpaca record without input has no input span", () => {
  for (const tok of [demo, stories]) {
    const prompt = tok.encode(alpacaPrompt(INSTRUCTION), { bos: true, eos: false });
    const spans = tokenSpans(tok, prompt, 3, alpacaPromptPieces(INSTRUCTION));
    assertCovers(spans, prompt.length + 3);
    assert.deepEqual(spans.map((s) => s.kind), ["template", "instruction", "template", "response"]);
    assert.equal(text(tok, prompt, spans[1]).trim(), INSTRUCTION);
    assert.ok(text(tok, prompt, spans[0]).startsWith("Below is an instruction that describes a task. Write"));
  }
});

test("a chat template: the role markers are template, the user's message the instruction", () => {
  const dir = tempDir("excitor-spans-");
  const { tokenizerJson, tokenizerConfig } = tinyByteLevelTokenizer();
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ ...tokenizerConfig, chat_template: CHATML_TEMPLATE }));
  const tok = TextTokenizer.fromFolder(dir);
  const user = "hello world, tell the story";
  const rendered = tok.applyChatTemplate([{ role: "user", content: user }], { addGenerationPrompt: true });
  const prompt = tok.encode(rendered, { bos: false, eos: false });
  const spans = tokenSpans(tok, prompt, 0, promptPieces(tok, user, "chat"));
  assertCovers(spans, prompt.length);
  assert.deepEqual(spans.map((s) => s.kind), ["template", "instruction", "template"]);
  assert.equal(tok.decode(prompt.slice(spans[1].start, spans[1].end)), user);
  assert.equal(tok.decode(prompt.slice(spans[2].start, spans[2].end)), "<|im_end|>\n<|im_start|>assistant\n");
});

test("without pieces, or with pieces that are not what the ids encode, the prompt after BOS is one instruction span", () => {
  const prompt = demo.encode(alpacaPrompt(INSTRUCTION, INPUT), { bos: true, eos: false });
  const coarse = [
    { kind: "template", start: 0, end: 1 },
    { kind: "instruction", start: 1, end: prompt.length },
    { kind: "response", start: prompt.length, end: prompt.length + 2 },
  ];
  assert.deepEqual(tokenSpans(demo, prompt, 2), coarse);
  assert.deepEqual(tokenSpans(demo, prompt, 2, alpacaPromptPieces("Another question?", INPUT)), coarse);
  // No template ("none"): everything the user typed is the instruction.
  const plain = demo.encode("Sue saw a kite.", { bos: true, eos: false });
  assert.deepEqual(tokenSpans(demo, plain, 0, promptPieces(demo, "Sue saw a kite.", "none")).map((s) => s.kind), ["template", "instruction"]);
});

test("the report's share on the instruction and input sums the attention on exactly those tokens", async () => {
  const rt = await openModel(DEMO);
  try {
    const prompt = demo.encode(alpacaPrompt(INSTRUCTION, INPUT), { bos: true, eos: false });
    const response = demo.encode(RESPONSE, { bos: false, eos: false });
    const r = await attentionReport(rt, demo, null, prompt, response, alpacaPromptPieces(INSTRUCTION, INPUT));
    assert.deepEqual(r.spans.map((s) => s.kind), ["template", "instruction", "template", "input", "template", "response"]);
    const user = new Set(r.spans.filter((s) => s.kind === "instruction" || s.kind === "input").flatMap((s) => Array.from({ length: s.end - s.start }, (_, i) => s.start + i)));
    assert.ok(user.size > 20 && user.size < prompt.length - 20, "the template's tokens are left out");
    for (const [l, layer] of r.layers.entries()) {
      // Recomputed here from the probabilities the report carries: per response row, heads averaged, then rows averaged.
      let sum = 0;
      for (let q = r.response[0]; q < r.response[1]; q++)
        for (const head of layer.base) for (const k of user) sum += head[q][k] / layer.base.length;
      const expected = sum / (r.response[1] - r.response[0]);
      assert.ok(Math.abs(r.instructionAndInputMass[l].base - expected) < 1e-6, `layer ${l}: ${r.instructionAndInputMass[l].base} vs ${expected}`);
      assert.ok(r.instructionAndInputMass[l].base < r.instructionMass[l].base, "a part of the prompt gets less than the whole prompt");
      assert.ok(r.instructionAndInputMass[l].base > 0);
    }
  } finally {
    rt.dispose();
  }
});
