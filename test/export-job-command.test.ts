/**
 * "Excitor: Export Distributed Job…" below the editor (extension/export-job-runner.ts): the spec a
 * preset makes becomes `excitor export-job` through the extension's own engine launcher (the
 * bundle), and a bad dataset comes back as an error at its file and line. Every command the
 * package contributes is registered by the extension.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { nodeLauncher } from "../extension/engine-process";
import { cliError, exportJob, jobFolder } from "../extension/export-job-runner";
import { exportJobArgs, specFromPreset } from "../extension/run-spec";
import { DEFAULT_SETTINGS } from "../extension/settings";
import { goldenWithTokenizer } from "./helpers/golden-tokenized";
import { tempDir } from "./helpers/tiny-model";

const REPO = path.resolve(__dirname, "../..");
const launcher = nodeLauncher(REPO, () => ({ threads: 0 }));

test("a preset's spec becomes an export-job with the same recipe the training wizard's run would have", async () => {
  const root = tempDir();
  const { model, data } = goldenWithTokenizer(root);
  const spec = specFromPreset("quick", model, data, DEFAULT_SETTINGS.train, 28);
  const dir = jobFolder(path.join(root, "jobs"), spec, new Date("2026-12-03T10:20:30Z"));
  assert.equal(path.basename(dir), "copy-20261203-102030");
  const args = exportJobArgs(spec, dir);
  assert.deepEqual(args.slice(0, 7), ["export-job", "--model", model, "--data", data, "--out", dir]);
  const log: string[] = [];
  const outcome = await exportJob(launcher, spec, dir, (l) => log.push(l));
  assert.equal(outcome.status, "done", JSON.stringify(outcome));
  if (outcome.status !== "done") return;
  assert.ok(fs.existsSync(outcome.readme));
  assert.equal(outcome.command, `bash ${path.join(dir, "run.sh")}`);
  const job = JSON.parse(fs.readFileSync(path.join(dir, "job.json"), "utf8"));
  assert.equal(job.recipe.batchSize, spec.batchSize);
  assert.equal(job.recipe.totalSteps, spec.maxSteps ?? job.recipe.totalSteps);
  assert.equal(job.recipe.learningRate, spec.learningRate);
  assert.deepEqual(job.run.spec.layers, job.adapter.layers);
  // A second export of the same spec at the same second gets its own folder.
  fs.mkdirSync(dir, { recursive: true });
  assert.equal(path.basename(jobFolder(path.join(root, "jobs"), spec, new Date("2026-12-03T10:20:30Z"))), "copy-20261203-102030-2");
  assert.ok(log.some((l) => l.includes("export-job")));
});

test("a dataset the engine refuses comes back as an error at its file and line, and no job folder is left", async () => {
  const root = tempDir();
  const { model } = goldenWithTokenizer(root);
  const bad = path.join(root, "bad.jsonl");
  fs.writeFileSync(bad, '{"instruction": "a", "output": "b"}\n{"output": 3}\n');
  const spec = specFromPreset("quick", model, bad, DEFAULT_SETTINGS.train, 2);
  const dir = path.join(root, "jobs", "bad");
  const outcome = await exportJob(launcher, spec, dir, () => {});
  assert.equal(outcome.status, "failed");
  if (outcome.status !== "failed") return;
  assert.equal(outcome.error.file, bad);
  assert.equal(outcome.error.line, 2);
  assert.ok(!fs.existsSync(dir));
  assert.deepEqual(cliError("excitor: error: --out x: already exists\n", 2), { message: "--out x: already exists" });
  assert.match(cliError("Segmentation fault\n", 139).message, /code 139: Segmentation fault/);
});

test("every command the package contributes is registered by the extension", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8"));
  const source = fs.readFileSync(path.join(REPO, "extension/extension.ts"), "utf8");
  const contributed: string[] = pkg.contributes.commands.map((c: { command: string }) => c.command);
  assert.ok(contributed.includes("excitor.exportJob"));
  for (const c of contributed) assert.ok(source.includes(`"${c}"`), `${c} is contributed but extension.ts does not register it`);
});
