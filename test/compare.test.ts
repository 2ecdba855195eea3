/**
 * `excitor compare`: the plan (every method, the same three-rate grid shape, LoRA at Excitor's
 * size), and a whole comparison on a tiny model: the report files, the numbers each method
 * carries, the best rate picked on validation loss, and clear errors for bad inputs.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { comparePlan, matchedLoraRank, rateGrid } from "../engine/compare/plan";
import { compareMethods } from "../engine/compare/run";
import { writeCompareReport } from "../engine/compare/report";
import { readModelConfig } from "../engine/model/config";
import { tempDir, writeAlpaca, writeTinyModel } from "./helpers/tiny-model";

const CLI = path.resolve(__dirname, "../../bin/excitor.js");

test("the rate grid is three values a factor of √10 apart around its centre", () => {
  const [lo, mid, hi] = rateGrid(1e-2);
  assert.equal(mid, 1e-2);
  // Two significant digits: 3.2e-3, 1e-2, 3.2e-2.
  assert.ok(Math.abs(hi / mid - Math.sqrt(10)) < 0.05 && Math.abs(mid / lo - Math.sqrt(10)) < 0.05);
});

test("the plan: Excitor, LoRA r 8 on q,v, LoRA at Excitor's size and full fine-tuning, three rates each", () => {
  const dir = writeTinyModel(path.join(tempDir(), "m"), { hidden: 32, heads: 4, kvHeads: 2, layers: 2 });
  const model = readModelConfig(dir);
  // LoRA on q_proj (32 -> 32) and v_proj (32 -> 16): A is [r, in], B is [out, r], so one rank costs
  // (32 + 32) + (32 + 16) = 112 parameters per layer, 224 over both layers.
  assert.equal(matchedLoraRank(model, 224 * 3), 3);
  assert.equal(matchedLoraRank(model, 224 * 3 + 100), 3);
  assert.equal(matchedLoraRank(model, 10), 1);
  const plan = comparePlan(model, { config: "K 4, r 3", parameters: 224 * 3 });
  const families = [...new Set(plan.map((r) => r.family))];
  assert.deepEqual(families, ["excitor", "lora", "lora-matched", "full"]);
  for (const f of families) assert.equal(plan.filter((r) => r.family === f).length, 3, f);
  const lora = plan.find((r) => r.family === "lora")!;
  assert.deepEqual(lora.lora, { r: 8, alpha: 16, targets: ["q_proj", "v_proj"] });
  assert.deepEqual(plan.find((r) => r.family === "lora-matched")!.lora, { r: 3, alpha: 6, targets: ["q_proj", "v_proj"] });
  // The adapters share one grid; full fine-tuning's is a decade lower, of the same shape.
  const rates = (f: string) => plan.filter((r) => r.family === f).map((r) => r.learningRate);
  assert.deepEqual(rates("excitor"), rates("lora"));
  rates("full").forEach((x, i) => assert.ok(Math.abs(x * 10 - rates("excitor")[i]) < 1e-9));
});

test("a comparison on a tiny model writes report.json, report.md and the scatter plot with every method (held-out: the validation split; domain: base samples)", async () => {
  const root = tempDir();
  const model = writeTinyModel(path.join(root, "m"), { hidden: 32, heads: 4, kvHeads: 2, layers: 2, seed: 8 });
  const records = Array.from({ length: 24 }, (_, i) => ({ instruction: `say ${"abc"[i % 3]}`, input: i % 2 ? "x" : "", output: `${"abc"[i % 3]}.` }));
  const data = writeAlpaca(path.join(root, "train.jsonl"), records);
  const out = path.join(root, "out");
  const events: string[] = [];
  const result = await compareMethods({
    modelDir: model, dataFile: data, outDir: out, backend: "ort", seed: 0,
    epochs: 1, batchSize: 8, microBatch: 8, excitor: { numPrompts: 4, rank: 3 }, retainWeight: 0, attentionRecords: 2,
    onEvent: (e) => events.push(e.type === "compare-train" ? `train:${e.event.type}` : e.type),
  });
  const report = writeCompareReport(out, result, { model, data });
  assert.equal(report, path.join(out, "report.md"));
  const json = JSON.parse(fs.readFileSync(path.join(out, "report.json"), "utf8"));
  assert.deepEqual([...new Set(json.methods.map((m: { method: string }) => m.method))], ["excitor", "lora", "full"]);
  assert.equal(json.methods.length, 12);
  // 24 records, 5 % held out for validation: one record, the one no run trains on.
  assert.equal(result.heldout, 1);
  assert.equal(json.heldout, "the validation split");
  assert.equal(json.domain, "the base model's own samples");
  assert.equal(result.domainTexts, 64);
  for (const m of json.methods) {
    for (const key of ["method", "config", "exactMatch", "storyPerplexity", "retentionKL", "trainableParameters", "trainSeconds"]) assert.ok(key in m, `${m.config}: ${key}`);
    assert.ok(m.exactMatch >= 0 && m.exactMatch <= 1);
    assert.ok(m.storyPerplexity.base > 1 && m.storyPerplexity.tuned > 1);
    assert.ok(Number.isFinite(m.retentionKL) && m.retentionKL >= 0, `${m.config}: KL ${m.retentionKL}`);
    assert.ok(m.trainSeconds > 0);
    assert.equal(m.instructionAttention.length, 2);
  }
  // Every run starts from the same base: one base story perplexity for all.
  assert.equal(new Set(json.methods.map((m: { storyPerplexity: { base: number } }) => m.storyPerplexity.base)).size, 1);
  // Full fine-tuning trains every weight; the matched LoRA is about Excitor's size.
  const params = (f: string) => json.methods.find((m: { family: string }) => m.family === f).trainableParameters;
  assert.ok(params("full") > 10 * params("excitor"));
  assert.ok(Math.abs(params("lora-matched") - params("excitor")) < 224);
  // One selected rate per family, the one with the lowest validation loss.
  for (const f of ["excitor", "lora", "lora-matched", "full"]) {
    const runs = json.methods.filter((m: { family: string }) => m.family === f);
    const best = runs.reduce((a: { validationLoss: number }, b: { validationLoss: number }) => (b.validationLoss < a.validationLoss ? b : a));
    assert.deepEqual(runs.filter((m: { selected: boolean }) => m.selected), [best], f);
  }
  const md = fs.readFileSync(report, "utf8");
  assert.match(md, /Each method at its best learning rate/);
  assert.match(md, /Full fine-tuning/);
  assert.match(md, /LoRA \(PEFT default\)/);
  assert.match(fs.readFileSync(path.join(out, "accuracy-vs-retention.svg"), "utf8"), /^<svg[^]*<circle[^]*<\/svg>\n$/);
  assert.equal(events[0], "compare-start");
  assert.equal(events.filter((e) => e === "compare-run").length, 12);
  assert.equal(events.filter((e) => e === "train:done").length, 12);
});

test("excitor compare names a missing held-out file in one line and exits 2", () => {
  const root = tempDir();
  const model = writeTinyModel(path.join(root, "m"));
  const data = writeAlpaca(path.join(root, "train.jsonl"), [{ instruction: "a", output: "b" }, { instruction: "c", output: "d" }]);
  const r = spawnSync(process.execPath, [CLI, "compare", "--model", model, "--data", data, "--heldout", path.join(root, "nope.jsonl"), "--domain", data, "--out", path.join(root, "o")], { encoding: "utf8" });
  assert.equal(r.status, 2);
  assert.match(r.stderr.trim(), /nope\.jsonl.*not found/);
  assert.equal(r.stderr.trim().split("\n").length, 1);
});

test("excitor compare --json --stdin-control stops on \"stop\" (as the editor's Cancel sends it): exit 130, no report", async () => {
  const root = tempDir();
  const model = writeTinyModel(path.join(root, "m"));
  const records = Array.from({ length: 40 }, (_, i) => ({ instruction: `say ${i % 5}`, output: `${i % 5}.` }));
  const data = writeAlpaca(path.join(root, "train.jsonl"), records);
  const out = path.join(root, "o");
  const child = spawn(process.execPath, [CLI, "compare", "--json", "--stdin-control", "--model", model, "--data", data, "--epochs", "50", "--out", out], { stdio: ["pipe", "pipe", "pipe"] });
  let buffered = "";
  const types: string[] = [];
  child.stdout.on("data", (d: Buffer) => {
    buffered += d;
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const l of lines) {
      const e = JSON.parse(l) as { type: string };
      types.push(e.type);
      if (e.type === "step" && !child.stdin.writableEnded) child.stdin.end("stop\n");
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  assert.equal(code, 130);
  assert.deepEqual(types.slice(0, 2), ["compare-start", "compare-run"]);
  assert.ok(!types.includes("compare-done"));
  assert.equal(fs.existsSync(path.join(out, "report.md")), false);
});
