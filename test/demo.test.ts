/** The built-in demo: its model, tokenizer and data, and the main command end to end (a few steps). */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { openModel } from "../engine/load";
import { readDataset } from "../engine/data/datasets";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { generate } from "../engine/generate/generate";
import { stories, NAMES, OBJECTS } from "../demo/scripts/corpus";
import { trainBpe } from "../demo/scripts/bpe";
import { isCorrect, mentionsAnswer, firstSentence, type DemoRecord } from "../demo/scripts/instructions";
import { accuracy, answerAll, perplexity } from "../demo/evaluate";
import { ExcitorAdapter } from "../engine/excitor/adapter";
import type { TrainEvent } from "../engine/train/events";
import { trainExamplesOf } from "../engine/train/recipe";
import { specFromPreset, trainArgs } from "../extension/run-spec";
import { DEFAULT_SETTINGS } from "../extension/settings";
import { tempDir } from "./helpers/tiny-model";

const repo = path.resolve(__dirname, "../..");
const MODEL = path.join(repo, "demo", "model");
const DATA = path.join(repo, "demo", "data");
const readJsonl = <T>(f: string): T[] => fs.readFileSync(f, "utf8").trim().split("\n").map((l) => JSON.parse(l) as T);

test("the demo model is a small GQA LLaMA in a Hugging Face folder of at most ~8 MB", async () => {
  const size = fs.readdirSync(MODEL).reduce((n, f) => n + fs.statSync(path.join(MODEL, f)).size, 0);
  assert.ok(size < 8.5e6, `${size} bytes`);
  const rt = await openModel(MODEL);
  assert.equal(rt.config.architecture, "LlamaForCausalLM");
  assert.ok(rt.config.numKvHeads < rt.config.numHeads, "grouped-query attention");
  rt.dispose();
});

test("the demo model knows its domain: low held-out perplexity and a coherent greedy story", async () => {
  const rt = await openModel(MODEL);
  const tok = TextTokenizer.fromFolder(MODEL);
  const domain = readJsonl<{ text: string }>(path.join(DATA, "stories-heldout.jsonl")).map((r) => r.text);
  const ppl = await perplexity(rt, tok, domain.slice(0, 30), false);
  // A uniform guess over the vocabulary would be ~1000; the grammar leaves a handful of choices per token.
  assert.ok(ppl < 4, `held-out perplexity ${ppl}`);
  const out = await generate(rt, tok, tok.encode("Once upon a time, there was a"), { maxTokens: 60, temperature: 0, repetitionPenalty: 1 });
  const vocabulary = new Set(stories(2000, 9).flatMap((s) => s.text.split(/[^A-Za-z]+/)));
  const words = out.text.split(/[^A-Za-z]+/).filter(Boolean);
  assert.ok(words.length > 20, out.text);
  assert.match(out.text, /^ [a-z]/, "the continuation keeps its leading space");
  assert.ok(words.every((w) => vocabulary.has(w)), `every word is a word of the stories: ${out.text}`);
  assert.match(out.text, /\w+ named [A-Z][a-z]+\./, "it names its character");
  rt.dispose();
});

test("demo data: the answer is in the input, exact match scores it, and held-out stories are not training stories", () => {
  const train = readJsonl<DemoRecord>(path.join(DATA, "train.jsonl"));
  const heldout = readJsonl<DemoRecord>(path.join(DATA, "heldout.jsonl"));
  assert.equal(readDataset(path.join(DATA, "train.jsonl")).length, train.length, "the engine reads it as Alpaca JSONL");
  for (const r of [...train, ...heldout]) {
    assert.ok(r.input.includes(r.answer), r.instruction);
    assert.ok(r.output.startsWith(" ") && r.output.trim().endsWith(`${r.answer}.`), r.output);
    assert.ok(isCorrect(r.output, r) && mentionsAnswer(r.output, r));
  }
  const seen = new Set(train.map((r) => r.input));
  assert.ok(heldout.every((r) => !seen.has(r.input)));
  assert.equal(new Set(heldout.map((r) => r.task)).size, 3, "every task is held out");
  assert.equal(firstSentence(" The kite was red. It flew."), "the kite was red");
  const kite = { output: " The kite was red.", answer: "red" };
  assert.ok(isCorrect("The kite was red!", kite));
  assert.ok(!isCorrect("The kite was red and blue.", kite), "exact match means the whole first sentence");
  assert.ok(mentionsAnswer("A red kite flew.", kite) && !mentionsAnswer("The kite was reddish.", kite));
});

test("the BPE trainer's tokenizer.json loads in @huggingface/tokenizers and round-trips text", () => {
  const texts = stories(300, 7).map((s) => s.text);
  const t = trainBpe(texts, 700, "#\n");
  const tok = TextTokenizer.fromJson(t.tokenizerJson, t.tokenizerConfig);
  assert.equal(tok.vocabSize, t.vocabSize);
  for (const text of texts.slice(0, 50)) assert.equal(tok.decode(tok.encode(text, { bos: false })), text);
  const ids = tok.encode(`${NAMES[0]} found a ${OBJECTS[0]}.`, { bos: false });
  assert.ok(ids.length <= 8, `frequent words are single tokens (${ids.length} ids)`);
  const word = tok.encode(OBJECTS[0], { bos: false });
  assert.deepEqual(tok.encode(`${OBJECTS[0]}.`, { bos: false }).slice(0, word.length), word, "punctuation never merges into a word, so a word is the same tokens wherever it stands");
  assert.deepEqual(tok.decode(tok.encode("Ωmega 🦙", { bos: false })), "Ωmega 🦙", "unseen characters fall back to bytes");
});

interface DemoNumbers {
  before: { accuracy: number; accuracyByTask: Record<string, number>; answerPerplexity: number; storyPerplexity: number };
  after: { accuracy: number; accuracyByTask: Record<string, number>; answerPerplexity: number; storyPerplexity: number };
  steps: number;
  instructionAttention: { layer: number; base: number; tuned: number }[];
  retention: { kl: number; pplRatio: number };
}

// Measured with `npm run demo -- --seed N` (deterministic for its seed), seeds 0-4: base 0 %, tuned
// 98-100 % exact match, story perplexity ×1.004-1.014 (demo/README.md). The bounds are the demo's
// promise (issue 12), checked on seeds 0 and 1 (issue 17): at least 90 % exact match with the base
// model's own domain kept within 1.10× its perplexity.
const MAX_BASE_ACCURACY = 0.1;
const MIN_TUNED_ACCURACY = 0.9;
const MIN_TASK_ACCURACY = 0.6;
const MAX_STORY_PPL_RATIO = 1.1;

/**
 * The train command line the extension's run manager starts, less --stdin-control: the editor
 * keeps the engine's stdin open, and here it would end at once (which stops the run).
 */
function excitorAsTheExtension(args: string[]) {
  return spawnSync(process.execPath, [path.join(repo, "bin/excitor.js"), ...args.filter((a) => a !== "--stdin-control")], { encoding: "utf8", timeout: 900_000 });
}

/** Run Demo's held-out exact match, measured by the test above in this same run. */
let demoAccuracy: number | undefined;

/** The demo program run once per seed (a clean output folder each): its output folder, numbers and stdout. */
const demoRuns = new Map<number, { out: string; numbers: DemoNumbers; stdout: string }>();
function runDemo(seed: number): { out: string; numbers: DemoNumbers; stdout: string } {
  const out = path.join(tempDir(), `demo-seed${seed}`);
  const r = spawnSync(process.execPath, [path.join(repo, "dist/demo/run.js"), "--out", out, "--seed", String(seed)], { encoding: "utf8", timeout: 900_000 });
  assert.equal(r.status, 0, r.stderr);
  const run = { out, numbers: JSON.parse(fs.readFileSync(path.join(out, "report.json"), "utf8")) as DemoNumbers, stdout: r.stdout };
  demoRuns.set(seed, run);
  return run;
}

/** The promise holds for every seed checked, not one lucky seed (issue 17): each seed's run must clear the bounds. */
function assertDemoBounds(n: DemoNumbers, seed: number): void {
  assert.ok(n.before.accuracy <= MAX_BASE_ACCURACY, `seed ${seed}: the base model cannot already do it: ${n.before.accuracy}`);
  assert.ok(n.after.accuracy >= MIN_TUNED_ACCURACY, `seed ${seed}: the tuned model follows the instructions: ${n.after.accuracy}`);
  for (const [task, acc] of Object.entries(n.after.accuracyByTask)) assert.ok(acc >= MIN_TASK_ACCURACY, `seed ${seed}: ${task} questions: ${acc}`);
  assert.ok(n.after.storyPerplexity <= n.before.storyPerplexity * MAX_STORY_PPL_RATIO, `seed ${seed}: story perplexity ${n.before.storyPerplexity} -> ${n.after.storyPerplexity}`);
}

test("npm run demo: the tuned model follows held-out instructions that the base model cannot", () => {
  const { out, numbers: n, stdout } = runDemo(0);
  const r = { stdout };
  for (const f of ["adapter_config.json", "adapter_model.safetensors", "metrics.jsonl", "report.md", "report.json", "loss.svg"]) assert.ok(fs.existsSync(path.join(out, f)), f);

  demoAccuracy = n.after.accuracy;
  assertDemoBounds(n, 0);
  assert.deepEqual(Object.keys(n.after.accuracyByTask).sort(), ["color", "name", "object"]);
  assert.ok(n.after.answerPerplexity < n.before.answerPerplexity / 100, "the expected answers became far more likely");

  const report = fs.readFileSync(path.join(out, "report.md"), "utf8");
  const pctOf = (x: number) => `${(100 * x).toFixed(0)} %`;
  assert.ok(report.includes(`| held-out instruction accuracy (exact match, 100 prompts) | ${pctOf(n.before.accuracy)} | ${pctOf(n.after.accuracy)} |`), "the Markdown report shows the same numbers");
  assert.match(report, /held-out story perplexity .* \| \d+\.\d{3} \| \d+\.\d{3} \|/);
  assert.match(report, /Trainable parameters: [\d,]+/);
  assert.match(report, new RegExp(`Training: ${n.steps} steps, median \\d+ tokens/s`));
  assert.equal((report.match(/^\| (What|Who|Where)/gm) ?? []).length, 3, "three prompts side by side");
  // Where the answers look: the answer word's attention, then the whole answer's on the instruction and input; one row per layer each.
  assert.equal((report.match(/^\| \d \| \d+ % \| \d+ % \|$/gm) ?? []).length, 8, "two attention tables, one row per layer");
  assert.match(report, /share of the response tokens' attention that goes to the instruction and its input/);
  assert.equal(n.instructionAttention.length, 4);
  for (const a of n.instructionAttention) assert.ok(a.base > 0 && a.base < 1 && a.tuned > 0 && a.tuned < 1, `layer ${a.layer}: ${a.base} / ${a.tuned}`);
  // The forgetting monitor ran on the base model's own samples, and its cost is reported.
  assert.ok(n.retention.kl > 0 && n.retention.pplRatio > 0, JSON.stringify(n.retention));
  assert.match(report, /Forgetting monitor \(the base model's own samples\): KL to base \d+\.\d{4} nats\/token, perplexity ×\d\.\d{3} on them; measuring took \d+\.\d s \(\d+\.\d % of training\)/);
  assert.match(fs.readFileSync(path.join(out, "loss.svg"), "utf8"), /^<svg[^>]*>[\s\S]*<polyline[\s\S]*<\/svg>\n$/);
  assert.ok(r.stdout.includes("# Excitor demo report"), "the report is printed too");
});

test("the README's terminal chat: the demo adapter answers a held-out question about a story given with /input", () => {
  const run = demoRuns.get(0);
  assert.ok(run, "seed 0 ran first");
  const held = readJsonl<DemoRecord>(path.join(DATA, "heldout.jsonl")).filter((r) => r.task === "name").slice(0, 5);
  const lines = held.flatMap((r) => ["/reset", `/input ${r.input}`, r.instruction]);
  const chat = spawnSync(process.execPath, [path.join(repo, "bin/excitor.js"), "chat", "--model", MODEL, "--adapter", run.out, "--temperature", "0", "--max-tokens", "24"], { input: lines.join("\n") + "\n", encoding: "utf8", timeout: 120_000 });
  assert.equal(chat.status, 0, chat.stderr);
  const answers = chat.stdout.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("("));
  assert.equal(answers.length, held.length, chat.stdout);
  const right = held.filter((r, i) => answers[i].trim() === r.output.trim()).length;
  assert.ok(right >= 4, `${right} of ${held.length} answers exact:\n${chat.stdout}`);
});

test("the demo's promise holds on another seed: seed 1 clears the same bounds as seed 0 (the minimum over both)", () => {
  const { numbers: n } = runDemo(1);
  assertDemoBounds(n, 1);
  const seed0 = demoRuns.get(0);
  assert.ok(seed0, "seed 0 ran first");
  // Different seeds train on a different order and start: a demo whose two runs agreed exactly would not be seeded at all.
  assert.notDeepEqual(n.after.storyPerplexity, seed0.numbers.after.storyPerplexity, "the seed changes the run");
});

test("the extension's Standard preset on the demo data reaches at least 80 % of Run Demo's held-out exact match", async () => {
  assert.ok(demoAccuracy !== undefined, "the full demo ran first");
  const data = path.join(DATA, "train.jsonl");
  const d = DEFAULT_SETTINGS.train;
  const spec = specFromPreset("standard", MODEL, data, d, trainExamplesOf(readDataset(data).length, d.validationShare));
  const out = path.join(tempDir(), "standard");
  const r = excitorAsTheExtension(trainArgs(spec, out, false, "auto"));
  assert.equal(r.status, 0, r.stderr);
  const done = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as TrainEvent).find((e) => e.type === "done");
  assert.ok(done?.type === "done" && done.verdict?.learned, `the run says it learned: ${JSON.stringify(done)}`);

  const rt = await openModel(MODEL);
  const tok = TextTokenizer.fromFolder(MODEL);
  rt.setAdapter(ExcitorAdapter.load(out, rt.config));
  const heldout = readJsonl<DemoRecord>(path.join(DATA, "heldout.jsonl"));
  const standard = accuracy(await answerAll(rt, tok, heldout, true));
  rt.dispose();
  assert.ok(standard >= 0.8 * demoAccuracy, `Standard ${standard} against Run Demo ${demoAccuracy}`);
});

test("the Quick preset on a 60-record user file visibly changes the answers", async () => {
  const data = path.join(tempDir(), "mine.jsonl");
  fs.writeFileSync(data, fs.readFileSync(path.join(DATA, "train.jsonl"), "utf8").split("\n").slice(0, 60).join("\n") + "\n");
  const d = DEFAULT_SETTINGS.train;
  const spec = specFromPreset("quick", MODEL, data, d, trainExamplesOf(readDataset(data).length, d.validationShare));
  const out = path.join(tempDir(), "quick");
  const r = excitorAsTheExtension(trainArgs(spec, out, false, "auto"));
  assert.equal(r.status, 0, r.stderr);

  const rt = await openModel(MODEL);
  const tok = TextTokenizer.fromFolder(MODEL);
  const heldout = readJsonl<DemoRecord>(path.join(DATA, "heldout.jsonl")).slice(0, 40);
  const base = await answerAll(rt, tok, heldout, false);
  rt.setAdapter(ExcitorAdapter.load(out, rt.config));
  const tuned = await answerAll(rt, tok, heldout, true);
  rt.dispose();
  const changed = tuned.filter((a, i) => a.response !== base[i].response).length;
  // The spec's recipe ran 8 steps here and left every answer as the base model's.
  assert.ok(changed >= 0.8 * heldout.length, `${changed} of ${heldout.length} answers changed`);
  assert.ok(accuracy(tuned) > accuracy(base), `exact match ${accuracy(base)} -> ${accuracy(tuned)}`);
});

test("the demo program's --help prints its options and runs nothing; an unknown option is refused with the valid ones", () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [path.join(repo, "dist/demo/run.js"), ...args], { encoding: "utf8", timeout: 60_000 });
  const help = run("--help");
  assert.equal(help.status, 0, help.stderr);
  for (const o of ["--out", "--steps", "--seed", "--backend", "--json", "--retain-weight", "--model", "--vision"]) assert.ok(help.stdout.includes(o), `--help names ${o}`);
  assert.doesNotMatch(help.stdout + help.stderr, /measuring the base model|training on/, "nothing ran");
  const typo = run("--stepz", "3");
  assert.equal(typo.status, 2);
  assert.equal(typo.stdout, "");
  assert.match(typo.stderr, /^excitor demo: error: unknown option '--stepz' \(Did you mean --steps\?\); the options are --out, --steps, --seed, --backend, --model, --retain-weight, --json, --vision, --help \(npm run demo -- --help\)\n$/);
  const bad = run("--seed", "x");
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^excitor demo: error: --seed: "x" is not a number; the options are/);
});
