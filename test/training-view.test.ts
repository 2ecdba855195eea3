/**
 * How a run reads on screen across Resumes (extension/train-history.ts: elapsed time goes on,
 * redone steps show once) and how its tab is titled (extension/run-labels.ts).
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import type { TrainEvent } from "../engine/train/events";
import { keptKnowledgeLine, pplText, retentionSource, runRetention } from "../extension/retention";
import { panelTitle, runTime } from "../extension/run-labels";
import type { RunInfo } from "../extension/run-manager";
import { runTooltip } from "../extension/run-tooltip";
import { runProgress } from "../extension/train-history";

const start = (resumedFromStep: number): TrainEvent => ({
  type: "start", totalSteps: 10, stepsPerEpoch: 5, epochs: 2, trainExamples: 20, validationExamples: 1, truncatedExamples: 0,
  trainableParams: 10, baseParams: 100, backend: "test", layers: [0], learningRate: 1e-2, effectiveBatch: 4, resumedFromStep, outDir: "/runs/a",
});
const step = (n: number, elapsedSeconds: number, loss = 1 / n): TrainEvent => ({
  type: "step", step: n, totalSteps: 10, epoch: n / 5, loss, learningRate: 1e-2, gradNorm: 1, tokensPerSecond: 100, elapsedSeconds, etaSeconds: 1, gates: [[0]],
});

test("elapsed time goes on after a Resume: each segment's time is added", () => {
  const first = [start(0), step(1, 10), step(2, 20), step(3, 30), { type: "cancelled", step: 3, adapterDir: "/runs/a" } as TrainEvent];
  assert.equal(runProgress(first).elapsed, 30);
  const resumed = [...first, start(3)];
  assert.deepEqual([runProgress(resumed).elapsedBefore, runProgress(resumed).elapsed], [30, 30], "before the first resumed step: the time so far");
  const later = [...resumed, step(4, 12), step(5, 22)];
  assert.deepEqual([runProgress(later).elapsedBefore, runProgress(later).elapsed], [30, 52]);
  const done = [...later, { type: "done", step: 5, loss: 0.2, elapsedSeconds: 25, adapterDir: "/runs/a" } as TrainEvent];
  assert.equal(runProgress(done).elapsed, 55);
  assert.equal(runProgress([start(0)]).elapsed, undefined);
});

test("a segment resumed from an older checkpoint redoes steps: the curve shows each step once, the newer one", () => {
  // Cut off (no clean stop) at step 4 after a checkpoint at step 2: steps 3-4 are run again.
  const events = [start(0), step(1, 1), step(2, 2), { type: "validation", step: 2, loss: 0.9 } as TrainEvent, step(3, 3), { type: "validation", step: 3, loss: 0.8 } as TrainEvent, step(4, 4), start(2), step(3, 1, 0.33), step(4, 2, 0.25)];
  const p = runProgress(events);
  assert.deepEqual(p.steps.map((s) => [s.step, s.loss]), [[1, 1], [2, 0.5], [3, 0.33], [4, 0.25]]);
  assert.deepEqual(p.validations.map((v) => v.step), [2]);
  assert.equal(p.elapsed, 4 + 2);
});

test("an older metrics.jsonl that logs steps again without a start between (a start line lost to a kill mid-write): each step once, the last logged", () => {
  // Killed after step 4 with its checkpoint at 2; the resumed segment's start line was glued to the cut line and lost.
  const events = [start(0), step(1, 1), step(2, 2), { type: "validation", step: 2, loss: 0.9 } as TrainEvent, step(3, 3), { type: "validation", step: 3, loss: 0.8 } as TrainEvent, step(4, 4), step(3, 1, 0.33), { type: "validation", step: 3, loss: 0.7 } as TrainEvent, step(4, 2, 0.25), step(5, 3, 0.2)];
  const p = runProgress(events);
  assert.deepEqual(p.steps.map((s) => [s.step, s.loss]), [[1, 1], [2, 0.5], [3, 0.33], [4, 0.25], [5, 0.2]]);
  assert.deepEqual(p.validations.map((v) => [v.step, v.loss]), [[2, 0.9], [3, 0.7]]);
});

test("tab titles tell runs apart: the run's name and its start time", () => {
  const at = new Date(2025, 2, 7, 14, 5, 59).toISOString(); // 7 March 2025, 14:05 local time
  assert.equal(runTime(at), "2025-03-07 14:05");
  assert.equal(panelTitle("data-quick", at), "Training: data-quick (2025-03-07 14:05)");
  assert.notEqual(panelTitle("data-quick", at), panelTitle("data-quick", new Date(2025, 2, 7, 14, 6).toISOString()));
});

const retained = (resumedFromStep: number, method?: "excitor" | "lora" | "full"): TrainEvent => ({
  ...(start(resumedFromStep) as Extract<TrainEvent, { type: "start" }>),
  method,
  retention: { samples: 16, tokens: 2048, source: "base", file: "/runs/a/retention.jsonl" },
});
const validation = (n: number, kl?: number, pplRatio?: number): TrainEvent => ({ type: "validation", step: n, loss: 1 / n, ...(kl === undefined ? {} : { retention: { kl, pplRatio: pplRatio! } }) });

test("kept knowledge: the KL to the base at each validation, each step once across Resumes, and the latest perplexity ratio", () => {
  const events = [retained(0), step(1, 1), step(2, 2), validation(2, 0.01, 1.004), step(3, 3), validation(3, 0.03, 1.02), start(2), step(3, 1), validation(3, 0.025, 1.041)];
  // The resumed segment started without retention in this made-up history; the run as it stands measures nothing.
  assert.equal(runRetention(events).set, undefined);
  const resumed = [...events.slice(0, 6), retained(2), step(3, 1), validation(3, 0.025, 1.041)];
  const r = runRetention(resumed);
  assert.deepEqual(r.kl, [[2, 0.01], [3, 0.025]], "the redone step's value replaces the old one");
  assert.deepEqual(r.last, { kl: 0.025, pplRatio: 1.041 });
  assert.equal(pplText(r.last!), "ppl ×1.04 on the retention set");
  assert.equal(pplText({ kl: 0, pplRatio: 1.004 }), "ppl ×1.004 on the retention set", "three decimals near 1, where the difference is the point");
  assert.equal(retentionSource(r.set!), "16 samples of the base model, 2048 tokens");
  assert.equal(retentionSource({ samples: 16, tokens: 900, source: "base+file", file: "/data/facts.jsonl" }), "16 samples of the base model and facts.jsonl, 900 tokens");
  // Before the first validation: a set, no points yet.
  const early = runRetention([retained(0), step(1, 1)]);
  assert.deepEqual([early.kl, early.last, early.started], [[], undefined, true]);
  assert.equal(keptKnowledgeLine(early), "kept knowledge: measured at the first validation");
  // A run with --retain none, and one that has not started.
  assert.equal(keptKnowledgeLine(runRetention([start(0), step(1, 1), validation(1)])), "kept knowledge: not measured (no retention set)");
  assert.equal(keptKnowledgeLine(runRetention([])), undefined);
  // The done event's measure counts when no validation carried one.
  const done = { type: "done", step: 3, loss: 0.3, elapsedSeconds: 3, adapterDir: "/runs/a", retention: { kl: 0.5, pplRatio: 1.6 } } as TrainEvent;
  assert.equal(keptKnowledgeLine(runRetention([retained(0), step(1, 1), done])), "kept knowledge: KL to base 0.5 nats/token, ppl ×1.60 on the retention set");
  assert.deepEqual(runRetention([retained(0), step(1, 1), done]).kl, [[3, 0.5]], "a run without validation examples charts its one measure at the end");
});

test("the Runs view's tooltip: the method and the kept knowledge of the run, then where it is", () => {
  const info = (o: Partial<RunInfo> = {}): RunInfo => ({
    id: "a", dir: "/runs/a", name: "train-custom-lora", status: "done", createdAt: "2025-03-07T14:05:00Z", hasAdapter: true, live: false, canResume: false,
    spec: { kind: "train", model: "/m", data: "/d.jsonl", method: "lora", loraR: 4, epochs: 1, batchSize: 4, maxLength: 64, validationShare: 0.1, seed: 0 },
    ...o,
  });
  const events = [retained(0, "lora"), step(1, 1), step(2, 2), validation(2, 0.0123, 1.038)];
  assert.equal(
    runTooltip(info(), events),
    ["**train-custom-lora** (done)", "method: LoRA", "kept knowledge: KL to base 0.0123 nats/token, ppl ×1.04 on the retention set", "folder: `/runs/a`", "model: `/m`", "data: `/d.jsonl`"].join("\n\n"),
  );
  // Before its engine has started: the method as the spec asks for it, no kept-knowledge line yet.
  const lines = runTooltip(info({ status: "running", live: true }), []).split("\n\n");
  assert.deepEqual(lines.slice(0, 3), ["**train-custom-lora** (running)", "method: LoRA r 4, alpha 16 on q_proj, v_proj", "folder: `/runs/a`"]);
  // An Excitor run from before methods and retention existed.
  const old = runTooltip(info({ name: "demo", spec: { kind: "demo", model: "/m", data: "/d", epochs: 6, batchSize: 16, maxLength: 256, validationShare: 0.05, seed: 0, prompts: 30, rank: 16 } }), [start(0), step(1, 1)]);
  assert.match(old, /method: Excitor, K 30, r 16\n\nkept knowledge: not measured \(no retention set\)/);
});
