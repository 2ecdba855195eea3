/**
 * How a run reads on screen across Resumes (extension/train-history.ts: elapsed time goes on,
 * redone steps show once) and how its tab is titled (extension/run-labels.ts).
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import type { TrainEvent } from "../engine/train/events";
import { panelTitle, runTime } from "../extension/run-labels";
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

test("tab titles tell runs apart: the run's name and its start time", () => {
  const at = new Date(2025, 2, 7, 14, 5, 59).toISOString(); // 7 March 2025, 14:05 local time
  assert.equal(runTime(at), "2025-03-07 14:05");
  assert.equal(panelTitle("data-quick", at), "Training: data-quick (2025-03-07 14:05)");
  assert.notEqual(panelTitle("data-quick", at), panelTitle("data-quick", new Date(2025, 2, 7, 14, 6).toISOString()));
});
