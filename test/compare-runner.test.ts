/**
 * "Excitor: Compare Methods" as the extension runs it (extension/compare-runner.ts), against a
 * fake `excitor compare --json` (a Node script that prints the CLI's documented lines: compare-start,
 * compare-run before each run, each run's train events, compare-done; it stops on "stop" at its
 * stdin with exit 130, as the CLI does): the arguments it is given, the progress it reports (run i
 * of N, method, config, step), the report it ends with, a stop, and a failure's message.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { compareMessage, comparePercent, runCompare, type CompareProgress } from "../extension/compare-runner";
import type { Launcher } from "../extension/engine-process";
import { tempDir } from "./helpers/tiny-model";

/**
 * The fake CLI. FAKE_MODE: "ok" (3 runs of 4 steps, then the report), "slow" (waits for "stop"
 * between steps), "fail" (an error line, exit 1). It records its arguments in FAKE_ARGS.
 */
const FAKE = `
const fs = require("node:fs");
const path = require("node:path");
const args = process.argv.slice(2);
fs.writeFileSync(process.env.FAKE_ARGS, JSON.stringify(args));
const out = args[args.indexOf("--out") + 1];
const say = (o) => process.stdout.write(JSON.stringify(o) + "\\n");
const mode = process.env.FAKE_MODE;
let stop = false;
process.stdin.on("data", (d) => { if (String(d).includes("stop")) stop = true; });
if (mode === "fail") {
  process.stderr.write("excitor: error: data.jsonl: line 3: not JSON\\n");
  process.exit(1);
}
const runs = [["excitor", "K 30 · lr 3e-2"], ["lora", "r 8 · lr 3e-3"], ["full", "lr 1e-4"]];
(async () => {
  say({ type: "compare-start", runs: runs.length });
  for (const [i, [method, config]] of runs.entries()) {
    say({ type: "compare-run", index: i, runs: runs.length, method, config });
    say({ type: "start", method, totalSteps: 4, stepsPerEpoch: 4, epochs: 1, trainExamples: 8, validationExamples: 1, truncatedExamples: 0, trainableParams: 1, baseParams: 10, backend: "fake", layers: [0], learningRate: 0.01, effectiveBatch: 2, resumedFromStep: 0, outDir: out });
    for (let s = 1; s <= 4; s++) {
      if (mode === "slow") await new Promise((r) => setTimeout(r, 200));
      if (stop) { process.stderr.write("stopped\\n"); process.exit(130); }
      say({ type: "step", step: s, totalSteps: 4, epoch: s / 4, loss: 1 / s, learningRate: 0.01, gradNorm: 1, tokensPerSecond: 10, elapsedSeconds: s, etaSeconds: 4 - s, gates: [] });
    }
    process.stderr.write("run " + (i + 1) + " done\\n");
  }
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, "report.md"), "# Excitor vs LoRA vs full fine-tuning\\n");
  say({ type: "compare-done", report: path.join(out, "report.md") });
  process.exit(0);
})();
`;

function fake(mode: "ok" | "slow" | "fail"): { launcher: Launcher; argsFile: string } {
  const dir = tempDir("excitor-fake-cli-");
  const script = path.join(dir, "excitor.js");
  fs.writeFileSync(script, FAKE);
  const argsFile = path.join(dir, "args.json");
  const run = (args: string[]) => spawn(process.execPath, [script, ...args], { env: { ...process.env, FAKE_MODE: mode, FAKE_ARGS: argsFile }, stdio: ["pipe", "pipe", "pipe"] });
  return { launcher: { cli: run, demo: run }, argsFile };
}

test("a comparison runs `excitor compare --json`, reports run i of N with its method, config and step, and ends with its report", async () => {
  const { launcher, argsFile } = fake("ok");
  const out = path.join(tempDir(), "compare-1");
  const seen: CompareProgress[] = [];
  const log: string[] = [];
  const outcome = await runCompare(launcher, { model: "/models/demo", data: "/data/train.jsonl", out, backend: "auto" }, (p) => seen.push(p), (l) => log.push(l)).done;
  assert.deepEqual(JSON.parse(fs.readFileSync(argsFile, "utf8")), ["--backend", "auto", "compare", "--json", "--stdin-control", "--model", "/models/demo", "--data", "/data/train.jsonl", "--out", out]);
  assert.deepEqual(outcome, { status: "done", report: path.join(out, "report.md") });
  assert.ok(fs.existsSync(path.join(out, "report.md")));
  const messages = seen.map(compareMessage);
  assert.equal(messages[0], "starting 3 runs");
  assert.ok(messages.includes("run 1 of 3 · Excitor K 30 · lr 3e-2 · step 2/4"));
  assert.ok(messages.includes("run 2 of 3 · LoRA r 8 · lr 3e-3"), "a run is named before its first step");
  assert.equal(messages.at(-1), "run 3 of 3 · full fine-tuning lr 1e-4 · step 4/4");
  // The bar only moves forward, and reaches the end with the last step.
  const percents = seen.map(comparePercent);
  assert.ok(percents.every((p, i) => i === 0 || p >= percents[i - 1]), `monotone: ${percents}`);
  assert.equal(percents.at(-1), 100);
  assert.ok(log.some((l) => l === "[compare] run 2 done"), "the CLI's human lines go to the log");
});

test("Cancel stops the comparison: 'stop' on its stdin, exit 130, no report", async () => {
  const { launcher } = fake("slow");
  const out = path.join(tempDir(), "compare-2");
  let handle: ReturnType<typeof runCompare> | undefined;
  let asked = false;
  handle = runCompare(launcher, { model: "/m", data: "/d.jsonl", out, backend: "auto" }, (p) => {
    if (p.step === 1 && !asked) {
      asked = true;
      handle!.stop();
    }
  }, () => {});
  assert.deepEqual(await handle.done, { status: "stopped" });
  assert.ok(!fs.existsSync(path.join(out, "report.md")));
});

test("a failing comparison ends with the CLI's own message, without its 'excitor: error:' prefix", async () => {
  const { launcher } = fake("fail");
  const outcome = await runCompare(launcher, { model: "/m", data: "/d.jsonl", out: tempDir(), backend: "auto" }, () => {}, () => {}).done;
  assert.deepEqual(outcome, { status: "failed", error: "data.jsonl: line 3: not JSON" });
});
