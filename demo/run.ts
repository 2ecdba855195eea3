/**
 * `npm run demo`: the main job on built-in data, offline. Tunes an Excitor adapter on the demo
 * instruction set for the built-in demo model (demo/model), with live progress, then reports
 * what changed: held-out instruction accuracy and domain perplexity before and after, trainable
 * parameters, speed, and a few answers side by side. The report is also written as Markdown
 * with a loss-curve SVG next to the adapter.
 *
 *   node dist/demo/run.js [--out DIR] [--steps N] [--seed N] [--backend NAME] [--model DIR] [--retain-weight X] [--json]
 *   node dist/demo/run.js --vision [...]   the multimodal demo (demo/vision-run.ts)
 *   node dist/demo/run.js --help           the options (demo/options.ts)
 *
 * --json prints each training event as one JSON line on stdout (as `excitor train --json` does)
 * and the narration on stderr: that is how the VS Code extension's "Run Demo" shows it live.
 * Ctrl-C (SIGINT), or with --json a line "stop" on stdin or its end, stops training at a step
 * boundary with a checkpoint and exits 130.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { openModel, type BackendChoice } from "../engine/load";
import { countBaseParameters } from "../engine/model/config";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { DEMO_RECIPE } from "../engine/train/recipe";
import { train, TRAIN_DEFAULTS } from "../engine/train/trainer";
import { writeFileAtomic } from "../engine/fs-atomic";
import { demoControls } from "./run-controls";
import { instructionAttention, type LayerInstructionMass } from "../engine/analysis/instruction-attention";
import { accuracy, answerAll, answerPerplexity, perplexity, answerWordAttention, type Answer } from "./evaluate";
import { lossChartSvg, type LossPoint } from "./loss-chart";
import type { DemoRecord } from "./scripts/instructions";
import { visionDemo } from "./vision-run";
import { parseDemoOptions, type DemoOptions } from "./options";

const repo = path.resolve(__dirname, "../..");
const PARSED = parseDemoOptions(process.argv.slice(2));
const O: DemoOptions = typeof PARSED === "number" ? process.exit(PARSED) : PARSED;
const MODEL = O.model;
const OUT = O.out;
const MAX_STEPS = O.steps;
const DATA = path.join(repo, "demo", "data");
const JSON_EVENTS = O.json;
const BACKEND = O.backend;
const SEED = O.seed;
const say = (line: string) => (JSON_EVENTS ? process.stderr.write(line + "\n") : console.log(line));
/** What the demo writes into OUT; only these are cleared first (OUT may hold other files, e.g. an editor's run record). */
const OUTPUTS = ["adapter_config.json", "adapter_model.safetensors", "checkpoint", "metrics.jsonl", "report.md", "report.json", "loss.svg"];
/** Held-out records whose attention the report summarises (a full attention capture each). */
const ATTENTION_RECORDS = 20;

const readJsonl = <T>(file: string): T[] => fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as T);
const pct = (x: number) => `${(100 * x).toFixed(0)} %`;
const fmtPpl = (x: number) => (x >= 1000 ? Math.round(x).toLocaleString("en-US") : x.toFixed(2));

async function main(): Promise<void> {
  const t0 = performance.now();
  const heldout = readJsonl<DemoRecord>(path.join(DATA, "heldout.jsonl"));
  const domain = readJsonl<{ text: string }>(path.join(DATA, "stories-heldout.jsonl")).map((r) => r.text);
  const tok = TextTokenizer.fromFolder(MODEL);
  const rt = await openModel(MODEL, { backend: BACKEND, forTraining: true });
  const baseParams = countBaseParameters(rt.config);
  say(`Excitor demo — base model ${path.relative(process.cwd(), MODEL) || MODEL} (${(baseParams / 1e6).toFixed(2)} M parameters, ${rt.backend})`);

  say(`measuring the base model on ${heldout.length} held-out instructions and ${domain.length} held-out stories...`);
  const before = { answers: await answerAll(rt, tok, heldout, false), answerPpl: await answerPerplexity(rt, tok, heldout, false), ppl: await perplexity(rt, tok, domain, false) };

  for (const f of OUTPUTS) fs.rmSync(path.join(OUT, f), { recursive: true, force: true });
  const controls = demoControls(JSON_EVENTS);
  const losses: LossPoint[] = [];
  const validation: LossPoint[] = [];
  const speeds: number[] = [];
  const trainStart = performance.now();
  const result = await train(rt, tok, {
    ...TRAIN_DEFAULTS,
    dataFile: path.join(DATA, "train.jsonl"),
    outDir: OUT,
    baseModel: MODEL,
    ...DEMO_RECIPE, // why these numbers: engine/train/recipe.ts and demo/README.md
    retainWeight: O.retainWeight,
    maxSteps: MAX_STEPS,
    seed: SEED,
    checkpointEvery: 25,
    signal: controls.signal,
    onEvent: (e) => {
      controls.onEvent(e);
      if (e.type === "step") {
        losses.push({ step: e.step, loss: e.loss });
        speeds.push(e.tokensPerSecond);
      } else if (e.type === "validation") validation.push({ step: e.step, loss: e.loss });
    },
  });
  controls.done();
  const trainSeconds = (performance.now() - trainStart) / 1000;
  if (result.status === "cancelled") {
    say(`demo stopped at step ${result.step}; the adapter and a checkpoint are in ${OUT}`);
    rt.dispose();
    process.exitCode = 130;
    return;
  }

  say("measuring the tuned model...");
  const after = { answers: await answerAll(rt, tok, heldout, true), answerPpl: await answerPerplexity(rt, tok, heldout, true), ppl: await perplexity(rt, tok, domain, true) };
  const attention = await answerWordAttention(rt, tok, heldout.slice(0, ATTENTION_RECORDS));
  const onInstruction = await instructionAttention(rt, tok, heldout);
  rt.dispose();

  const median = [...speeds].sort((a, b) => a - b)[Math.floor(speeds.length / 2)] ?? 0;
  const wallSeconds = (performance.now() - t0) / 1000;
  const monitor = { retention: result.retention ?? null, monitorSeconds: result.monitorSeconds };
  const report = renderReport({
    before, after, heldout: heldout.length, domain: domain.length, trainable: result.adapter.parameterCount, baseParams,
    steps: result.step, tokensPerSecond: median, trainSeconds, attention, onInstruction, wallSeconds, out: OUT, retention: result.retention, monitorSeconds: result.monitorSeconds,
  });
  writeFileAtomic(path.join(OUT, "report.json"), JSON.stringify({ ...reportNumbers(before, after, attention, onInstruction, result.adapter.parameterCount, baseParams, result.step, median, trainSeconds, wallSeconds), ...monitor }, null, 2) + "\n");
  writeFileAtomic(path.join(OUT, "loss.svg"), lossChartSvg(losses, validation, "Excitor on the demo instruction set"));
  writeFileAtomic(path.join(OUT, "report.md"), report);
  say("\n" + report);
  say(`Report written to ${path.join(OUT, "report.md")} (loss curve: loss.svg).`);
}

interface ReportData {
  before: Measured;
  after: Measured;
  heldout: number;
  domain: number;
  trainable: number;
  baseParams: number;
  steps: number;
  tokensPerSecond: number;
  trainSeconds: number;
  /** The forgetting monitor's last measure, and what measuring cost. */
  retention?: { kl: number; pplRatio: number };
  monitorSeconds: number;
  wallSeconds: number;
  attention: AnswerAttention;
  onInstruction: LayerInstructionMass[];
  out: string;
}

function renderReport(d: ReportData): string {
  const examples = pickExamples(d.before.answers, d.after.answers);
  const cell = (s: string) => (s === "" ? "(nothing)" : s.replace(/\|/g, "\\|").replace(/\n/g, " "));
  return [
    "# Excitor demo report",
    "",
    "| | base model | with the Excitor adapter |",
    "|---|---|---|",
    `| held-out instruction accuracy (exact match, ${d.heldout} prompts) | ${pct(accuracy(d.before.answers))} | ${pct(accuracy(d.after.answers))} |`,
    ...Object.entries(byTask(d.before.answers)).map(([task, acc]) => `| &nbsp;&nbsp;${task} questions (${d.before.answers.filter((a) => a.record.task === task).length}) | ${pct(acc)} | ${pct(byTask(d.after.answers)[task])} |`),
    `| held-out answers whose first sentence contains the right word | ${pct(accuracy(d.before.answers, "mentions"))} | ${pct(accuracy(d.after.answers, "mentions"))} |`,
    `| perplexity of the expected held-out answers (lower: closer to answering) | ${fmtPpl(d.before.answerPpl)} | ${fmtPpl(d.after.answerPpl)} |`,
    `| held-out story perplexity (${d.domain} stories, the base model's own domain) | ${d.before.ppl.toFixed(3)} | ${d.after.ppl.toFixed(3)} |`,
    "",
    `- Trainable parameters: ${d.trainable.toLocaleString("en-US")} (${((100 * d.trainable) / d.baseParams).toFixed(2)} % of the base model's ${d.baseParams.toLocaleString("en-US")}); the base weights stay frozen.`,
    `- Training: ${d.steps} steps, median ${d.tokensPerSecond.toFixed(0)} tokens/s, ${d.trainSeconds.toFixed(0)} s with the KL-to-base term (--retain-weight ${O.retainWeight}); whole demo ${d.wallSeconds.toFixed(0)} s.`,
    ...(d.retention
      ? [`- Forgetting monitor (the base model's own samples): KL to base ${d.retention.kl.toFixed(4)} nats/token, perplexity ×${d.retention.pplRatio.toFixed(3)} on them; measuring took ${d.monitorSeconds.toFixed(1)} s (${((100 * d.monitorSeconds) / d.trainSeconds).toFixed(1)} % of training).`]
      : []),
    `- Adapter: \`${d.out}\` (adapter_config.json, adapter_model.safetensors, metrics.jsonl).`,
    "",
    "![loss curve](loss.svg)",
    "",
    "## Where the answers look",
    "",
    `How much attention the answer puts on the story word it must produce (from the answer token just before that word, mean over heads and ${ATTENTION_RECORDS} held-out records). The paper's claim: Excitor allocates extra attention to what the instruction needs.`,
    "",
    "| layer | base | with the Excitor adapter |",
    "|---|---|---|",
    ...d.attention.map((a) => `| ${a.layer} | ${pct(a.base)} | ${pct(a.tuned)} |`),
    "",
    `The same question over all ${d.heldout} held-out prompts and the whole answer: the share of the response tokens' attention that goes to the instruction and its input (the story; template words not counted), mean over heads, response tokens and prompts, each model on its own forward pass over the expected answer.`,
    "",
    "| layer | base | with the Excitor adapter |",
    "|---|---|---|",
    ...d.onInstruction.map((a) => `| ${a.layer} | ${pct(a.base)} | ${pct(a.tuned)} |`),
    "",
    "## Held-out prompts, side by side",
    "",
    "| instruction | expected | base model | tuned model |",
    "|---|---|---|---|",
    ...examples.map(([b, a]) => `| ${cell(b.record.instruction)} | ${cell(b.record.output.trim())} | ${cell(b.response)} | ${cell(a.response)} |`),
    "",
  ].join("\n");
}

type Measured = { answers: Answer[]; answerPpl: number; ppl: number };
type AnswerAttention = Awaited<ReturnType<typeof answerWordAttention>>;

/** The report's numbers for programs (tests, the extension's run view). */
function reportNumbers(before: Measured, after: Measured, answerWordAttention: AnswerAttention, instructionAttention: LayerInstructionMass[], trainable: number, baseParams: number, steps: number, tokensPerSecond: number, trainSeconds: number, wallSeconds: number) {
  const side = (m: Measured) => ({
    accuracy: accuracy(m.answers),
    accuracyByTask: byTask(m.answers),
    mentions: accuracy(m.answers, "mentions"),
    answerPerplexity: m.answerPpl,
    storyPerplexity: m.ppl,
  });
  return { before: side(before), after: side(after), answerWordAttention, instructionAttention, trainableParameters: trainable, baseParameters: baseParams, steps, tokensPerSecond, trainSeconds, wallSeconds };
}

/** Exact-match accuracy per kind of question. */
const byTask = (answers: Answer[]): Record<string, number> =>
  Object.fromEntries([...new Set(answers.map((a) => a.record.task))].map((t) => [t, accuracy(answers.filter((a) => a.record.task === t))]));

/** Three held-out prompts of different tasks, preferring ones the tuning fixed. */
function pickExamples(before: Answer[], after: Answer[]): [Answer, Answer][] {
  const pairs = before.map((b, i) => [b, after[i]] as [Answer, Answer]);
  const ranked = [...pairs.filter(([b, a]) => !b.correct && a.correct), ...pairs];
  const seen = new Set<string>();
  const out: [Answer, Answer][] = [];
  for (const p of ranked) {
    if (seen.has(p[0].record.task)) continue;
    seen.add(p[0].record.task);
    out.push(p);
    if (out.length === 3) break;
  }
  return out;
}

// --vision: the multimodal demo (demo/vision-run.ts).
(O.vision ? visionDemo(O) : main()).catch((e) => {
  console.error(`excitor demo: ${(e as Error).message}`);
  process.exit(1);
});
