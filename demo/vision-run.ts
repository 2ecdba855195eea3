/**
 * `npm run demo -- --vision` (or `npm run demo:vision`): the multimodal demo, offline. Tunes a
 * multimodal Excitor adapter for the demo model (demo/model) on questions about pictures
 * (demo/vision/data: generated scenes of coloured shapes, the options listed in each question)
 * through the demo's CLIP vision tower (demo/vision/encoder, pretrained by
 * demo/scripts/pretrain-vision.ts), then reports held-out exact match with the picture and
 * without it (the gap is what the picture adds), the story perplexity of the base model's own
 * domain before and after, and three answers side by side with their pictures.
 *
 *   node dist/demo/run.js --vision [--out DIR] [--steps N] [--seed N] [--backend NAME] [--json]
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { demoControls } from "./run-controls";
import { alpacaPrompt } from "../engine/data/templates";
import { writeFileAtomic } from "../engine/fs-atomic";
import { generate } from "../engine/generate/generate";
import { openModel } from "../engine/load";
import { singleImage, type ImageFeatures, type ModelRuntime } from "../engine/runtime";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { VISION_DEMO_RECIPE } from "../engine/train/recipe";
import { train, TRAIN_DEFAULTS } from "../engine/train/trainer";
import { VisionEncoder } from "../engine/vision/encoder";
import { perplexity } from "./evaluate";
import type { DemoOptions } from "./options";

const repo = path.resolve(__dirname, "../..");
const MODEL = path.join(repo, "demo", "model");
const ENCODER = path.join(repo, "demo", "vision", "encoder");
const DATA = path.join(repo, "demo", "vision", "data");
const STORIES = path.join(repo, "demo", "data", "stories-heldout.jsonl");
/** What the demo writes into OUT; only these are cleared first. */
const OUTPUTS = ["adapter_config.json", "adapter_model.safetensors", "checkpoint", "metrics.jsonl", "report.md", "report.json", "examples"];

interface VisionRecord {
  instruction: string;
  input: string;
  output: string;
  image: string;
  answer: string;
  task: string;
}

interface Answer {
  record: VisionRecord;
  response: string;
  correct: boolean;
}

const readJsonl = <T>(file: string): T[] => fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as T);
const pct = (x: number) => `${(100 * x).toFixed(0)} %`;
/** The answer's first sentence, as the text demo judges it. */
const firstSentence = (s: string) => (s.trim().match(/^[^.!?\n]*[.!?]?/)?.[0] ?? "").trim();

/** Greedy answers to the held-out questions, each with its picture or (`pictures` undefined) without. */
async function answerAll(rt: ModelRuntime, tok: TextTokenizer, records: VisionRecord[], useAdapter: boolean, pictures?: ImageFeatures[]): Promise<Answer[]> {
  const out: Answer[] = [];
  for (const [i, record] of records.entries()) {
    const ids = tok.encode(alpacaPrompt(record.instruction, record.input), { bos: true });
    const r = await generate(rt, tok, ids, { maxTokens: 12, temperature: 0, repetitionPenalty: 1, stop: ["\n"], useAdapter, image: pictures?.[i] });
    out.push({ record, response: r.text.trim(), correct: firstSentence(r.text) === record.output.trim() });
  }
  return out;
}

const accuracy = (answers: Answer[]) => answers.filter((a) => a.correct).length / Math.max(1, answers.length);
const byTask = (answers: Answer[]) => Object.fromEntries([...new Set(answers.map((a) => a.record.task))].map((t) => [t, accuracy(answers.filter((a) => a.record.task === t))]));

export async function visionDemo(o: DemoOptions): Promise<void> {
  const { out: OUT, steps: MAX_STEPS, seed: SEED, backend: BACKEND, json: JSON_EVENTS } = o;
  const say = (line: string) => (JSON_EVENTS ? process.stderr.write(line + "\n") : console.log(line));
  const t0 = performance.now();
  const heldout = readJsonl<VisionRecord>(path.join(DATA, "heldout.jsonl"));
  const stories = readJsonl<{ text: string }>(STORIES).map((r) => r.text);
  const tok = TextTokenizer.fromFolder(MODEL);
  const rt = await openModel(MODEL, { backend: BACKEND, forTraining: true });
  const encoder = await VisionEncoder.load(ENCODER, { engine: rt.backend.startsWith("onnxruntime") ? "onnxruntime" : "tfjs" });
  say(`Excitor multimodal demo — base model demo/model, image encoder demo/vision/encoder (CLIP, ${encoder.numTokens} tokens of ${encoder.hiddenSize}), ${rt.backend}`);

  const files = heldout.map((r) => path.resolve(DATA, r.image));
  const all = await encoder.featuresOf(files);
  const one = encoder.numTokens * encoder.hiddenSize;
  const pictures = files.map((_, i) => singleImage(all.slice(i * one, (i + 1) * one), encoder.numTokens, encoder.hiddenSize));

  say(`measuring the base model on ${heldout.length} held-out questions and ${stories.length} held-out stories...`);
  const before = { answers: await answerAll(rt, tok, heldout, false), ppl: await perplexity(rt, tok, stories, false) };

  for (const f of OUTPUTS) fs.rmSync(path.join(OUT, f), { recursive: true, force: true });
  const controls = demoControls(JSON_EVENTS);
  const speeds: number[] = [];
  const trainStart = performance.now();
  const result = await train(rt, tok, {
    ...TRAIN_DEFAULTS,
    dataFile: path.join(DATA, "train.jsonl"),
    outDir: OUT,
    baseModel: MODEL,
    ...VISION_DEMO_RECIPE, // why these numbers: demo/README.md, "The multimodal demo"
    retainWeight: o.retainWeight,
    vision: { encoder, dir: ENCODER, featureLayer: -1 },
    maxSteps: MAX_STEPS,
    seed: SEED,
    checkpointEvery: 25,
    signal: controls.signal,
    onEvent: (e) => {
      controls.onEvent(e);
      if (e.type === "step") speeds.push(e.tokensPerSecond);
    },
  });
  controls.done();
  const trainSeconds = (performance.now() - trainStart) / 1000;
  if (result.status === "cancelled") {
    say(`demo stopped at step ${result.step}; the adapter and a checkpoint are in ${OUT}`);
    encoder.dispose();
    rt.dispose();
    process.exitCode = 130;
    return;
  }

  say("measuring the tuned model, with each question's picture and without it...");
  const withPicture = await answerAll(rt, tok, heldout, true, pictures);
  const withoutPicture = await answerAll(rt, tok, heldout, true);
  const pplAfter = await perplexity(rt, tok, stories, true);
  encoder.dispose();
  rt.dispose();

  const examples = pickExamples(withPicture, withoutPicture);
  fs.mkdirSync(path.join(OUT, "examples"), { recursive: true });
  for (const a of examples) fs.copyFileSync(path.resolve(DATA, a.record.image), path.join(OUT, "examples", path.basename(a.record.image)));
  const median = [...speeds].sort((a, b) => a - b)[Math.floor(speeds.length / 2)] ?? 0;
  const numbers = {
    heldout: heldout.length,
    exactMatch: { base: accuracy(before.answers), withPicture: accuracy(withPicture), withoutPicture: accuracy(withoutPicture) },
    exactMatchByTask: { withPicture: byTask(withPicture), withoutPicture: byTask(withoutPicture) },
    storyPerplexity: { base: before.ppl, tuned: pplAfter, ratio: pplAfter / before.ppl },
    trainableParameters: result.adapter.parameterCount,
    steps: result.step,
    tokensPerSecond: median,
    trainSeconds,
    wallSeconds: (performance.now() - t0) / 1000,
  };
  const cell = (s: string) => (s === "" ? "(nothing)" : s.replace(/\|/g, "\\|"));
  const report = [
    "# Excitor multimodal demo report",
    "",
    "| | base model | tuned, without the picture | tuned, with the picture |",
    "|---|---|---|---|",
    `| held-out exact match (${heldout.length} questions; guessing among the listed options: 33 %) | ${pct(numbers.exactMatch.base)} | ${pct(numbers.exactMatch.withoutPicture)} | ${pct(numbers.exactMatch.withPicture)} |`,
    ...Object.keys(numbers.exactMatchByTask.withPicture).map((t) => `| &nbsp;&nbsp;${t} questions | ${pct(byTask(before.answers)[t] ?? 0)} | ${pct(numbers.exactMatchByTask.withoutPicture[t])} | ${pct(numbers.exactMatchByTask.withPicture[t])} |`),
    `| held-out story perplexity (${stories.length} stories, the base model's own domain) | ${before.ppl.toFixed(3)} | ${pplAfter.toFixed(3)} (×${numbers.storyPerplexity.ratio.toFixed(2)}) | (stories have no picture) |`,
    "",
    `- Trainable parameters: ${numbers.trainableParameters.toLocaleString("en-US")}, the two image projections included; the base model and the image encoder stay frozen, and each picture was encoded once.`,
    `- Training: ${numbers.steps} steps, median ${median.toFixed(0)} tokens/s, ${trainSeconds.toFixed(0)} s; whole demo ${numbers.wallSeconds.toFixed(0)} s.`,
    `- Adapter: \`${OUT}\`.`,
    "",
    "## Held-out questions, side by side",
    "",
    "| picture | question | expected | tuned, with the picture | tuned, without it |",
    "|---|---|---|---|---|",
    ...examples.map((a) => `| ![](examples/${path.basename(a.record.image)}) | ${cell(a.record.instruction)} | ${cell(a.record.output.trim())} | ${cell(a.response)} | ${cell(withoutPicture[heldout.indexOf(a.record)].response)} |`),
    "",
  ].join("\n");
  writeFileAtomic(path.join(OUT, "report.json"), JSON.stringify(numbers, null, 2) + "\n");
  writeFileAtomic(path.join(OUT, "report.md"), report);
  say("\n" + report);
  say(`Report written to ${path.join(OUT, "report.md")} (pictures of the examples in examples/).`);
}

/** Three held-out answers: where the picture decided it (right with it, wrong without) first, one per task where possible. */
function pickExamples(withPicture: Answer[], withoutPicture: Answer[]): Answer[] {
  const decided = withPicture.filter((a, i) => a.correct && !withoutPicture[i].correct);
  const out: Answer[] = [];
  for (const a of [...decided, ...withPicture]) {
    if (out.length === 3) break;
    if (!out.includes(a) && !out.some((b) => b.record.task === a.record.task)) out.push(a);
  }
  for (const a of withPicture) if (out.length < 3 && !out.includes(a)) out.push(a);
  return out;
}
