/** The presets' recipe (steps and rate scaled to the data) and the end-of-run verdict on the loss. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { MAX_PRESET_EPOCHS, presetRate, presetRecipe, trainExamplesOf } from "../engine/train/recipe";
import { defaultLearningRate } from "../engine/train/schedule";
import { learningVerdict } from "../engine/train/verdict";

test("recipe: small data gets many passes at a short run's rate; Alpaca-sized data gets back about the method's rate", () => {
  const tiny = presetRecipe("standard", 20);
  assert.equal(tiny.epochs, MAX_PRESET_EPOCHS, "2 steps an epoch would need 240 epochs: capped");
  assert.equal(tiny.steps, 200);
  assert.equal(tiny.learningRate, 0.03);
  // Between the two anchors (500 steps at 3e-2, 8,125 at 9e-3 × 16 / 256 = 5.6e-4) the rate falls
  // geometrically: 2,000 steps sit at ln 4 / ln 16.25 = 0.497 of the way, exp(-5.48) = 4.2e-3.
  assert.equal(presetRate(2000, 16), 0.0042);
  // LLaMA-Adapter's Alpaca run: 49,402 training examples at batch 32 for 5 epochs.
  const alpaca = presetRecipe("standard", 49_402, { batchSize: 32, minEpochs: 5 });
  assert.equal(alpaca.steps, 1544 * 5);
  const method = defaultLearningRate(32);
  assert.ok(Math.abs(alpaca.learningRate - method) / method < 0.1, `${alpaca.learningRate} vs the method's ${method}`);
  // Beyond the reference run the method's rate is the floor.
  assert.equal(presetRecipe("standard", 500_000, { batchSize: 32, minEpochs: 3 }).learningRate, Number(method.toPrecision(2)));
  // Quick stops after about 120 steps whatever the data's size.
  assert.equal(presetRecipe("quick", 100_000).steps, 120);
  assert.equal(presetRecipe("quick", 100_000).maxSteps, 120);
  assert.match(presetRecipe("quick", 100_000).reason, /^100000 training examples → 1 epoch, 120 steps of 8; a short run's rate \(the method's 2\.8e-4 is for runs of ~8,130 steps\)$/);
});

test("the presets count the examples that train: the records less the trainer's validation split", () => {
  assert.equal(trainExamplesOf(800, 0.05), 760, "the demo data: 40 held out");
  assert.equal(trainExamplesOf(60, 0.05), 57, "round(3.0)");
  assert.equal(trainExamplesOf(1, 0.05), 1, "a single record is never held out");
  assert.equal(trainExamplesOf(100, 0), 100);
});

test("verdict: a falling loss learned; a flat one near ln V did not; a flat low one barely did", () => {
  const falling = Array.from({ length: 50 }, (_, i) => 6 * Math.exp(-i / 10));
  const v = learningVerdict(falling, 1024)!;
  assert.equal(v.learned, true);
  assert.match(v.message, /^The model learned: training loss 4\.96 → 0\.06, −99 %\.$/);

  // The Standard run: 6.56 → 5.97 over 144 steps, vocabulary 1,024 (ln V = 6.93).
  const flat = Array.from({ length: 144 }, (_, i) => 6.56 - (0.59 * i) / 143);
  const nearChance = learningVerdict(flat, 1024)!;
  assert.equal(nearChance.learned, false);
  assert.match(nearChance.message, /did not learn this data: the training loss stayed near chance .*a uniform guess over 1,024 tokens scores 6\.93/);
  assert.match(nearChance.message, /more examples, more steps .* or a higher learning rate/);

  const lowFlat = learningVerdict(Array.from({ length: 40 }, () => 2.0), 1024)!;
  assert.equal(lowFlat.learned, false);
  assert.match(lowFlat.message, /^The model barely learned: the training loss hardly moved \(2\.00 → 2\.00, −0 %\)/);
  assert.equal(learningVerdict([6, 5, 4], 1024), undefined, "too few steps to say");
});
