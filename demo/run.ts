/**
 * `npm run demo`: the main job end to end on built-in data, with no network. Until the built-in
 * pretrained demo model lands, the base model is a tiny random LLaMA written here, so this shows
 * the pipeline (train with live progress -> adapter folder -> generate with and without it),
 * not a useful model. The task: "Say it again." — copy the input, which needs attention on the
 * instruction, the thing Excitor tunes.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { writeAlpaca, writeTinyModel } from "../test/helpers/tiny-model";

const root = path.resolve(__dirname, "../../.excitor-cache/demo");
const model = path.join(root, "model");
const data = path.join(root, "data.jsonl");
const out = path.join(root, "adapter");
const bin = path.resolve(__dirname, "../../bin/excitor.js");

function excitor(args: string[]): void {
  const r = spawnSync(process.execPath, [bin, ...args], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

fs.rmSync(root, { recursive: true, force: true });
writeTinyModel(model, { hidden: 64, layers: 4, heads: 4, kvHeads: 2, intermediate: 128, seed: 1, scale: 0.3 });
const names = ["Lily", "Tom", "Sue", "Ben", "Max", "Anna", "Sam", "Mia"];
const things = ["cat", "dog", "ball", "tree", "car", "cake", "bird", "box"];
const records = names.flatMap((n, i) => things.map((t, j) => ({ instruction: "Say it again.", input: `${n} saw a ${t}`, output: `${n} saw a ${t}` })).filter((_, j) => (i + j) % 2 === 0));
writeAlpaca(data, records);

console.log(`Excitor demo: base model ${model} (tiny random LLaMA), ${records.length} records in ${data}\n`);
excitor(["train", "--model", model, "--data", data, "--out", out, "--epochs", "6", "--batch-size", "8", "--lr", "0.04", "--validation-share", "0.1", "--checkpoint-every", "10"]);
const prompt = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nSay it again.\n\n### Input:\nMia saw a cat\n\n### Response:";
for (const [label, extra] of [["base model", []], ["tuned model", ["--adapter", out]]] as const) {
  process.stdout.write(`\n${label}: `);
  excitor(["generate", "--model", model, ...extra, "--prompt", prompt, "--max-tokens", "16", "--temperature", "0"]);
}
console.log(`\nAdapter written to ${out}`);
