/**
 * The forgetting monitor: the retention set (the base model's own samples or the user's text),
 * KL(base ‖ tuned) and the perplexity ratio, and how a training run reports them.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { openModel } from "../engine/load";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { train, TRAIN_DEFAULTS, METRICS_FILE, type TrainOptions } from "../engine/train/trainer";
import type { RetentionMeasure, TrainEvent } from "../engine/train/events";
import {
  RETENTION_FILE,
  baseSamples,
  parseRetain,
  readRetainFile,
  retentionBatches,
  retentionMeasure,
  retentionSums,
} from "../engine/train/retention";
import { tempDir, writeAlpaca, writeTinyModel } from "./helpers/tiny-model";

const root = tempDir();
const model = writeTinyModel(path.join(root, "model"), { seed: 2 });
const tok = TextTokenizer.fromFolder(model);
const data = writeAlpaca(
  path.join(root, "data.jsonl"),
  Array.from({ length: 12 }, (_, i) => ({ instruction: "Say it again.", input: `word ${i % 4}`, output: `word ${i % 4}` })),
);

test("KL(base ‖ tuned) and the perplexity ratio match a hand computation; padded positions do not count", () => {
  const V = 3;
  const ln = Math.log;
  // Position 0: p = (1/2, 1/4, 1/4), q = (1/4, 1/2, 1/4), next token 1.
  // Position 1: p = q = (1/3, 1/3, 1/3), next token 2.  Position 2: padding (weight 0), garbage rows.
  const base = Float32Array.from([ln(1 / 2), ln(1 / 4), ln(1 / 4), ln(1 / 3), ln(1 / 3), ln(1 / 3), 0, -50, 3]);
  const tuned = Float32Array.from([ln(1 / 4), ln(1 / 2), ln(1 / 4), ln(1 / 3), ln(1 / 3), ln(1 / 3), -9, 7, 1]);
  const batch = { batch: 1, seqLen: 3, ids: new Int32Array(3), targets: Int32Array.from([1, 2, 0]), weights: Float32Array.from([1, 1, 0]) };
  const m = retentionMeasure([retentionSums(base, tuned, batch, V)]);
  // KL at position 0: 1/2·ln(2) + 1/4·ln(1/2) + 0 = ln(2)/4; at position 1: 0. Mean over 2 positions.
  assert.ok(Math.abs(m.kl - Math.log(2) / 8) < 1e-6, `kl ${m.kl}`);
  // nll base: ln 4 + ln 3; tuned: ln 2 + ln 3; ratio exp((ln 2 − ln 4) / 2) = 1/√2.
  assert.ok(Math.abs(m.pplRatio - 1 / Math.SQRT2) < 1e-6, `ratio ${m.pplRatio}`);
});

test("retention batches are right-padded next-token batches whose weights mark every real position", () => {
  const samples = [
    { text: "a", ids: [1, 5, 6, 7] },
    { text: "b", ids: [1, 8] },
  ];
  const [b] = retentionBatches(samples, 0);
  assert.equal(b.batch, 2);
  assert.equal(b.seqLen, 3);
  assert.deepEqual(Array.from(b.ids), [1, 5, 6, 1, 0, 0]);
  assert.deepEqual(Array.from(b.targets), [5, 6, 7, 8, 0, 0]);
  assert.deepEqual(Array.from(b.weights), [1, 1, 1, 1, 0, 0]);
  // A small budget of positions per pass splits the set.
  assert.equal(retentionBatches(samples, 0, 3).length, 2);
});

test("--retain: base by default, none turns it off, a file replaces the base samples, base,FILE adds", () => {
  assert.deepEqual(parseRetain([]), { base: true, files: [] });
  assert.deepEqual(parseRetain(["base"]), { base: true, files: [] });
  assert.deepEqual(parseRetain(["none"]), { base: false, files: [] });
  assert.deepEqual(parseRetain(["notes.txt"]), { base: false, files: ["notes.txt"] });
  assert.deepEqual(parseRetain(["base,notes.txt", "more.jsonl"]), { base: true, files: ["notes.txt", "more.jsonl"] });
  assert.throws(() => parseRetain(["none,base"]), /"none" turns the forgetting monitor off/);
});

test("retain files: .txt paragraphs and .jsonl text fields, BOS first and cut to the limit; bad files name file:line", () => {
  const txt = path.join(root, "notes.txt");
  fs.writeFileSync(txt, "The sky is blue.\nIt is day.\n\n\n  Grass is green.  \n\n" + "x".repeat(400) + "\n");
  const fromTxt = readRetainFile(txt, tok, 128);
  assert.deepEqual(fromTxt.map((s) => s.text), ["The sky is blue.\nIt is day.", "Grass is green.", "x".repeat(400)]);
  for (const s of fromTxt) {
    assert.equal(s.ids[0], tok.bosId);
    assert.ok(s.ids.length <= 128);
  }
  // A text that fits ends with EOS, as a complete document; a cut one does not.
  assert.equal(fromTxt[1].ids.at(-1), tok.eosIds[0]);
  assert.equal(fromTxt[2].ids.length, 128);
  assert.notEqual(fromTxt[2].ids.at(-1), tok.eosIds[0]);

  const jsonl = path.join(root, "notes.jsonl");
  fs.writeFileSync(jsonl, `{"text": "one"}\n\n{"text": "two", "id": 3}\n`);
  assert.deepEqual(readRetainFile(jsonl, tok, 128).map((s) => s.text), ["one", "two"]);

  const bad = path.join(root, "bad.jsonl");
  fs.writeFileSync(bad, `{"text": "fine"}\n{"body": "no text"}\n`);
  assert.throws(() => readRetainFile(bad, tok, 128), (e: Error) => e.message.startsWith(`${bad}:2: needs a non-empty "text"`));
  fs.writeFileSync(bad, `{"text": "fine"}\n{not json\n`);
  assert.throws(() => readRetainFile(bad, tok, 128), (e: Error) => e.message.startsWith(`${bad}:2: not valid JSON`));
  assert.throws(() => readRetainFile(path.join(root, "missing.txt"), tok, 128), /missing\.txt: file not found/);
});

test("the base model's samples: 64 of at most 128 tokens from BOS, the same for a seed, different for another", async () => {
  const rt = await openModel(model);
  try {
    const a = await baseSamples(rt, tok, { seed: 3 });
    const b = await baseSamples(rt, tok, { seed: 3 });
    const c = await baseSamples(rt, tok, { seed: 4 });
    assert.equal(a.length, 64);
    for (const s of a) {
      assert.equal(s.ids[0], tok.bosId);
      assert.ok(s.ids.length >= 2 && s.ids.length <= 128, `${s.ids.length} tokens`);
      assert.equal(s.text, tok.decode(s.ids, { skipSpecial: true }));
    }
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.map((s) => s.ids), c.map((s) => s.ids));
    // Samples differ from one another (each has its own seed).
    assert.ok(new Set(a.map((s) => s.text)).size > 32);
    // The replay stream (--retain-weight) is another set.
    assert.notDeepEqual((await baseSamples(rt, tok, { seed: 3, stream: 1, count: 4 })).map((s) => s.ids), a.slice(0, 4).map((s) => s.ids));
  } finally {
    rt.dispose();
  }
});

async function run(outDir: string, extra: Partial<TrainOptions> = {}, onEvent?: (e: TrainEvent) => void) {
  const rt = await openModel(model, { forTraining: true });
  const events: TrainEvent[] = [];
  try {
    const res = await train(rt, tok, {
      ...TRAIN_DEFAULTS,
      dataFile: data,
      outDir,
      epochs: 4,
      batchSize: 4,
      microBatch: 4,
      validationShare: 0.2,
      checkpointEvery: 3,
      learningRate: 5e-2,
      baseModel: model,
      ...extra,
      onEvent: (e) => {
        events.push(e);
        onEvent?.(e);
      },
    });
    return { res, events };
  } finally {
    rt.dispose();
  }
}

const of = <K extends TrainEvent["type"]>(events: TrainEvent[], type: K) => events.filter((e): e is Extract<TrainEvent, { type: K }> => e.type === type);

test("a training run measures forgetting at every validation: none at step 0, more after training; saved set, events and metrics.jsonl", async () => {
  const out = path.join(root, "monitored");
  const { res, events } = await run(out);
  const lines = fs.readFileSync(path.join(out, RETENTION_FILE), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 64);
  for (const l of lines) assert.ok(typeof l.text === "string" && l.ids.length <= 128 && l.ids[0] === tok.bosId);

  const [start] = of(events, "start");
  assert.equal(start.method, "excitor");
  assert.deepEqual(start.retention, { samples: 64, tokens: lines.reduce((n, l) => n + l.ids.length, 0), source: "base", file: path.join(out, RETENTION_FILE) });

  const validations = of(events, "validation");
  assert.ok(validations.length >= 3);
  const first = validations[0].retention!;
  assert.equal(validations[0].step, 0);
  // The gates start at zero: the tuned model is the base model.
  assert.ok(first.kl < 1e-6, `kl at step 0: ${first.kl}`);
  assert.ok(Math.abs(first.pplRatio - 1) < 1e-4, `ratio at step 0: ${first.pplRatio}`);
  const last = validations.at(-1)!.retention!;
  assert.ok(last.kl > 1e-4, `kl after training: ${last.kl}`);
  assert.notEqual(last.pplRatio, 1);
  const [done] = of(events, "done");
  assert.deepEqual(done.retention, last);
  assert.deepEqual(res.retention, last);
  // What the monitor cost is reported, and is a part of the run's time.
  assert.ok(done.monitorSeconds! > 0 && done.monitorSeconds! < done.elapsedSeconds, `monitor ${done.monitorSeconds} s of ${done.elapsedSeconds} s`);
  assert.equal(res.monitorSeconds, done.monitorSeconds);

  // metrics.jsonl holds the same fields.
  const logged = fs.readFileSync(path.join(out, METRICS_FILE), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(logged.filter((e) => e.type === "validation").map((e) => e.retention as RetentionMeasure), validations.map((v) => v.retention));
  assert.deepEqual(logged.find((e) => e.type === "done").retention, last);
  assert.equal(logged.find((e) => e.type === "start").retention.samples, 64);
});

test("--retain none: no retention set, no retention fields", async () => {
  const out = path.join(root, "unmonitored");
  const { res, events } = await run(out, { retain: parseRetain(["none"]), maxSteps: 3 });
  assert.ok(!fs.existsSync(path.join(out, RETENTION_FILE)));
  assert.equal(of(events, "start")[0].retention, undefined);
  assert.ok(of(events, "validation").length > 0);
  for (const v of of(events, "validation")) assert.equal(v.retention, undefined);
  assert.equal(of(events, "done")[0].retention, undefined);
  assert.equal(of(events, "done")[0].monitorSeconds, undefined);
  assert.equal(res.retention, undefined);
  assert.equal(res.monitorSeconds, 0);
  assert.ok(!fs.readFileSync(path.join(out, METRICS_FILE), "utf8").includes('"retention"'));
});

test("--retain FILE replaces the base samples and base,FILE adds them; a bad file fails before training", async () => {
  const txt = path.join(root, "mine.txt");
  fs.writeFileSync(txt, "The cat sat.\n\nThe dog ran far away.\n\nBirds sing.\n");
  const only = path.join(root, "file-only");
  const a = await run(only, { retain: parseRetain([txt]), maxSteps: 3 });
  const saved = fs.readFileSync(path.join(only, RETENTION_FILE), "utf8").trim().split("\n").map((l) => JSON.parse(l).text);
  assert.deepEqual(saved, ["The cat sat.", "The dog ran far away.", "Birds sing."]);
  assert.equal(of(a.events, "start")[0].retention!.source, "file");
  assert.ok(of(a.events, "validation").every((v) => v.retention !== undefined));

  const both = path.join(root, "base-and-file");
  const b = await run(both, { retain: parseRetain([`base,${txt}`]), maxSteps: 3 });
  const texts = fs.readFileSync(path.join(both, RETENTION_FILE), "utf8").trim().split("\n").map((l) => JSON.parse(l).text);
  assert.equal(texts.length, 67);
  assert.deepEqual(texts.slice(64), saved);
  assert.equal(of(b.events, "start")[0].retention!.source, "base+file");

  const bad = path.join(root, "broken.jsonl");
  fs.writeFileSync(bad, `{"text": 5}\n`);
  await assert.rejects(run(path.join(root, "bad-retain"), { retain: parseRetain([bad]), maxSteps: 3 }), new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:1: needs a non-empty "text"`));
});

test("a resumed run reads its retention set back instead of making a new one", async () => {
  const out = path.join(root, "resumed");
  const ac = new AbortController();
  const cut = await run(out, { signal: ac.signal }, (e) => e.type === "step" && e.step === 2 && ac.abort());
  assert.equal(cut.res.status, "cancelled");
  // Keep three samples: a resume that regenerated the set would have 64 again.
  const file = path.join(out, RETENTION_FILE);
  const kept = fs.readFileSync(file, "utf8").trim().split("\n").slice(0, 3);
  fs.writeFileSync(file, kept.join("\n") + "\n");
  const resumed = await run(out, { resume: true });
  assert.equal(resumed.res.status, "done");
  assert.equal(of(resumed.events, "start")[0].retention!.samples, 3);
  assert.equal(fs.readFileSync(file, "utf8").trim().split("\n").length, 3);
});
