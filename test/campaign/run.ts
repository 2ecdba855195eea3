/**
 * `npm run campaign`: the project's own robustness campaign. It feeds the CLI and `serve`
 * hundreds of hostile, malformed and out-of-range inputs, kills training runs at random moments
 * and resumes them, and prints a table of what happened (the README's "Reliability" section
 * quotes it). Every input that must be refused should get one clear line; every valid one should
 * work. Writes the details to `out/campaign.json` (or the folder given as the first argument).
 *
 * Needs root only for two cases: the full-disk case mounts a 64 KB tmpfs and the read-only case
 * drops to user nobody; without root they are left out and the table says so.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { writeFileAtomic } from "../../engine/fs-atomic";
import { adapterCases, modelCases } from "./file-cases";
import { DEMO_DATA, DEMO_MODEL } from "./files";
import { dataCases, optionCases, outputCases, resumeCases, unmount } from "./input-cases";
import { killCampaign } from "./kills";
import { GOOD, REPO, runCase, runCli, type Case, type Result, type Verdict } from "./outcome";
import { serveCampaign } from "./serve-lines";

const KILL_RUNS = Number(process.env.CAMPAIGN_KILL_RUNS ?? 8);

async function prepareAdapters(root: string): Promise<{ excitor: string; lora: string; run: { dir: string; args: string[] } }> {
  const base = ["train", "--model", DEMO_MODEL, "--data", DEMO_DATA, "--batch-size", "4", "--retain", "none", "--json"];
  const excitor = path.join(root, "adapter-excitor");
  const lora = path.join(root, "adapter-lora");
  const runArgs = [...base, "--max-steps", "4", "--checkpoint-every", "2"];
  const run = path.join(root, "checkpointed-run");
  for (const [out, args] of [[excitor, [...base, "--max-steps", "2"]], [lora, [...base, "--max-steps", "2", "--method", "lora"]], [run, [...runArgs, "--max-steps", "3"]]] as const) {
    const r = await runCli([...args, "--out", out], { timeout: 300 });
    if (r.code !== 0) throw new Error(`could not make ${out}: ${r.stderr}`);
  }
  return { excitor, lora, run: { dir: run, args: [...runArgs, "--max-steps", "3"] } };
}

async function runAll(cases: Case[], concurrency: number, onDone: (r: Result) => void): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < cases.length) onDone(await runCase(cases[next++]));
    }),
  );
}

function table(results: Result[]): string {
  const groups = [...new Set(results.map((r) => r.group))];
  const verdicts: Verdict[] = ["clear error", "accepted", "unclear error", "internal error", "stack trace", "hang", "crash", "silently accepted", "wrongly refused"];
  const used = verdicts.filter((v) => results.some((r) => r.verdict === v));
  const row = (name: string, rs: Result[]) => `| ${name} | ${rs.length} | ${used.map((v) => rs.filter((r) => r.verdict === v).length).join(" | ")} |`;
  return [`| inputs | tried | ${used.join(" | ")} |`, `|---|---|${used.map(() => "---").join("|")}|`, ...groups.map((g) => row(g, results.filter((r) => r.group === g))), row("**all**", results)].join("\n");
}

async function main(): Promise<void> {
  const outDir = path.resolve(process.argv[2] ?? path.join(REPO, "out"));
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "excitor-campaign-"));
  const t0 = Date.now();
  const results: Result[] = [];
  const log = (r: Result) => {
    results.push(r);
    if (!GOOD.has(r.verdict)) process.stderr.write(`  ${r.verdict}: [${r.group}] ${r.name}: ${r.stderr}\n`);
  };
  try {
    process.stderr.write("campaign: making a checkpointed run and two adapters…\n");
    const made = await prepareAdapters(root);
    const cases = [...modelCases(root), ...adapterCases(root, made.excitor, made.lora), ...dataCases(root), ...optionCases(root), ...outputCases(root), ...resumeCases(root, made.run)];
    process.stderr.write(`campaign: ${cases.length} command-line inputs…\n`);
    await runAll(cases, 2, log);
    unmount(path.join(root, "full-disk"));
    process.stderr.write("campaign: serve requests…\n");
    const serve = await serveCampaign();
    serve.results.forEach(log);
    process.stderr.write(`campaign: killing training runs (${KILL_RUNS} runs)…\n`);
    const kills = await killCampaign(root, ["train", "--model", DEMO_MODEL, "--data", DEMO_DATA, "--batch-size", "4", "--max-steps", "12", "--checkpoint-every", "1", "--retain", "none", "--json"], KILL_RUNS);
    const good = results.filter((r) => GOOD.has(r.verdict)).length;
    const summary = [
      table(results),
      "",
      `${good} of ${results.length} inputs handled as they should (${results.length - good} not).`,
      `serve: the generation in flight ${serve.generationCompleted ? "completed" : "did NOT complete"}; the process ${serve.aliveAtEnd ? "answered a last request" : "did NOT survive"}.`,
      `kills: ${kills.kills} SIGKILLs during ${kills.runs} training runs; ${kills.survived} survived (resumed to a byte-identical adapter); ${kills.identicalAdapters}/${kills.runs} runs ended with the uninterrupted run's adapter; ${kills.leftoverTempFiles} temporary files left; ${kills.duplicateStepEvents} repeated step events in metrics.jsonl.`,
      ...kills.failures.map((f) => `  kill failure: ${f}`),
      `(${Math.round((Date.now() - t0) / 1000)} s)`,
    ].join("\n");
    process.stdout.write(summary + "\n");
    fs.mkdirSync(outDir, { recursive: true });
    writeFileAtomic(path.join(outDir, "campaign.json"), JSON.stringify({ results, serve: { generationCompleted: serve.generationCompleted, aliveAtEnd: serve.aliveAtEnd }, kills }, null, 1) + "\n");
  } finally {
    unmount(path.join(root, "full-disk"));
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`campaign failed: ${e instanceof Error ? e.stack : e}\n`);
  process.exitCode = 1;
});
