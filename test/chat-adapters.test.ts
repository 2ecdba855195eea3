/**
 * The chat's adapter list: runs on disk (as the run manager lists them) become entries named
 * "run name · date · status" that tell same-named runs apart; an adapter trained for a model of
 * another shape is offered greyed out with the reason, decided from config.json and the
 * safetensors header alone.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorAdapter } from "../engine/excitor/adapter";
import { LoraAdapter } from "../engine/lora/adapter";
import { readModelConfig } from "../engine/model/config";
import { adapterKind, adapterMisfit, adapterOptions, incompatibility, runNames, shortDate } from "../extension/chat-adapters";
import { attentionChoices } from "../extension/attention-target";
import type { Launcher } from "../extension/engine-process";
import { RUN_FILE, RunManager, type RunInfo, type RunStatus } from "../extension/run-manager";
import { tempDir, writeTinyModel } from "./helpers/tiny-model";

const REPO = path.resolve(__dirname, "../..");
const DEMO_MODEL = path.join(REPO, "demo", "model");
const GQA = path.join(REPO, "test", "fixtures", "golden", "gqa");
const label = (dir: string) => (dir === DEMO_MODEL ? "built-in demo model" : path.basename(dir));
/** Local times, so that the expected labels hold in every time zone. */
const at = (y: number, mo: number, d: number, h: number, mi: number, s = 0) => new Date(y, mo - 1, d, h, mi, s).toISOString();
const NOW = new Date(2025, 11, 5, 9, 0);

/** A run folder as the run manager writes it; `adapter` is copied in (or, for "demo", created for the demo model). */
function writeRun(root: string, id: string, o: { name: string; createdAt: string; status: RunStatus; model: string; adapter?: "demo" | string }): void {
  const dir = path.join(root, id);
  fs.mkdirSync(dir, { recursive: true });
  const spec = { kind: "train", model: o.model, data: "data.jsonl", epochs: 1, batchSize: 8, maxLength: 64, validationShare: 0, seed: 0 };
  fs.writeFileSync(path.join(dir, RUN_FILE), JSON.stringify({ name: o.name, spec, status: o.status, createdAt: o.createdAt }));
  if (o.adapter === "demo") ExcitorAdapter.create(readModelConfig(DEMO_MODEL), { numPrompts: 3, rank: 2, seed: 1, baseModel: DEMO_MODEL }).save(dir);
  else if (o.adapter) fs.cpSync(o.adapter, dir, { recursive: true });
}

const listRuns = (root: string): RunInfo[] => new RunManager(root, {} as Launcher, () => "auto", () => {}).list();

test("dates read as day, month and time; the year shows only when it is not this year's", () => {
  assert.equal(shortDate(at(2025, 12, 2, 14, 3), NOW), "2 Dec 14:03");
  assert.equal(shortDate(at(2025, 1, 9, 8, 5, 7), NOW, true), "9 Jan 08:05:07");
  assert.equal(shortDate(at(2024, 12, 31, 23, 59), NOW), "31 Dec 2024 23:59");
  assert.equal(shortDate("not a date", NOW), "unknown date");
});

test("runs of the same name are told apart: by the minute, then the second, then the folder", () => {
  const run = (id: string, name: string, createdAt: string) => ({ id, name, createdAt }) as RunInfo;
  const names = runNames(
    [
      run("a", "train-quick", at(2025, 12, 2, 14, 3, 10)),
      run("b", "train-quick", at(2025, 12, 2, 14, 4, 10)),
      run("c", "demo", at(2025, 12, 3, 9, 0, 1)),
      run("d", "demo", at(2025, 12, 3, 9, 0, 2)),
      run("e", "demo", at(2025, 12, 3, 9, 0, 2)),
      run("f", "other", at(2025, 12, 3, 9, 0, 2)),
    ],
    NOW,
  );
  assert.deepEqual(Object.fromEntries(names), {
    a: "train-quick · 2 Dec 14:03",
    b: "train-quick · 2 Dec 14:04",
    c: "demo · 3 Dec 09:00:01",
    d: "demo · 3 Dec 09:00:02 · d",
    e: "demo · 3 Dec 09:00:02 · e",
    f: "other · 3 Dec 09:00",
  });
  assert.equal(new Set(names.values()).size, names.size, "every entry reads differently");
});

test("an adapter for another model shape is refused with the shapes in words; one for this model passes", () => {
  const demo = readModelConfig(DEMO_MODEL);
  const gqa = readModelConfig(path.join(GQA, "model"));
  assert.equal(incompatibility(path.join(GQA, "adapter"), gqa), undefined);
  assert.equal(
    incompatibility(path.join(GQA, "adapter"), demo),
    "it was trained for a model with hidden size 64, 8 heads; this model has hidden size 128, 4 heads",
  );
  assert.equal(adapterMisfit(path.join(GQA, "adapter"), path.join(GQA, "model")), undefined);
  assert.match(adapterMisfit(path.join(GQA, "adapter"), DEMO_MODEL) ?? "", /hidden size 64, 8 heads/);
  // Layers beyond the model's are named before any shape is compared.
  const twoLayers = readModelConfig(writeTinyModel(path.join(tempDir(), "m"), { layers: 2 }));
  assert.equal(incompatibility(path.join(GQA, "adapter"), twoLayers), "it adapts layer 2 and this model has 2 layers (0–1)");
});

test("a broken adapter folder is refused with the file and what is wrong", () => {
  const demo = readModelConfig(DEMO_MODEL);
  const dir = tempDir();
  fs.cpSync(path.join(GQA, "adapter"), dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "adapter_config.json"), '{"peft_type": "PREFIX_TUNING"}');
  assert.match(incompatibility(dir, demo) ?? "", /adapter_config\.json: "peft_type" is "PREFIX_TUNING", expected "EXCITOR"/);
  // A LoRA config is read as LoRA: what it lacks is named.
  fs.writeFileSync(path.join(dir, "adapter_config.json"), '{"peft_type": "LORA"}');
  assert.match(incompatibility(dir, demo) ?? "", /adapter_config\.json: "r" must be a positive integer/);
  const noWeights = tempDir();
  fs.copyFileSync(path.join(GQA, "adapter", "adapter_config.json"), path.join(noWeights, "adapter_config.json"));
  assert.match(incompatibility(noWeights, demo) ?? "", /adapter_model\.safetensors: file not found/);
  // A safetensors file without this layer's tensors.
  const missing = tempDir();
  ExcitorAdapter.create(demo, { numPrompts: 2, rank: 2, seed: 0, layers: [0] }).save(missing);
  fs.writeFileSync(path.join(missing, "adapter_config.json"), fs.readFileSync(path.join(missing, "adapter_config.json"), "utf8").replace(/"layers": \[\s*0\s*\]/, '"layers": [0, 1]'));
  assert.equal(incompatibility(missing, demo), "adapter_model.safetensors has no prompts tensor for layer 1");
});

test("the list for the demo model: its adapters first, newest first, then the others greyed out with the reason; running runs wait", () => {
  const root = tempDir();
  const gqaModel = path.join(GQA, "model");
  writeRun(root, "quick-1", { name: "train-quick", createdAt: at(2025, 12, 2, 14, 3), status: "done", model: DEMO_MODEL, adapter: "demo" });
  writeRun(root, "quick-2", { name: "train-quick", createdAt: at(2025, 12, 4, 10, 30), status: "stopped", model: DEMO_MODEL, adapter: "demo" });
  writeRun(root, "gqa", { name: "gqa-run", createdAt: at(2025, 12, 3, 8, 0), status: "done", model: gqaModel, adapter: path.join(GQA, "adapter") });
  writeRun(root, "failed", { name: "broken", createdAt: at(2025, 12, 4, 11, 0), status: "failed", model: DEMO_MODEL });
  const options = adapterOptions(listRuns(root), DEMO_MODEL, label, NOW);
  assert.deepEqual(
    options.map((o) => [o.label, o.disabled ?? ""]),
    [
      ["train-quick · 4 Dec 10:30 · stopped", ""],
      ["train-quick · 2 Dec 14:03 · done", ""],
      ["gqa-run · 3 Dec 08:00 · done — for model", "not for built-in demo model: it was trained for a model with hidden size 64, 8 heads; this model has hidden size 128, 4 heads"],
    ],
    "the failed run has no adapter and is not listed",
  );
  assert.deepEqual(options.map((o) => o.path), ["quick-2", "quick-1", "gqa"].map((id) => path.join(root, id)));
  assert.equal(options[0].name, "train-quick · 4 Dec 10:30");
  assert.match(options[2].title, /^not for built-in demo model: .*\n.*gqa \(trained on model\)$/, "hovering says why and where it came from");

  // An adapter that does not fit the model its run names (the folder changed since) says so.
  writeRun(root, "moved", { name: "moved", createdAt: at(2025, 12, 1, 7, 0), status: "done", model: DEMO_MODEL, adapter: path.join(GQA, "adapter") });
  assert.equal(adapterOptions(listRuns(root), DEMO_MODEL, label, NOW).find((o) => o.name.startsWith("moved"))?.label, "moved · 1 Dec 07:00 · done — does not fit this model");
  fs.rmSync(path.join(root, "moved"), { recursive: true });

  // For the other model the roles swap.
  const forGqa = adapterOptions(listRuns(root), gqaModel, label, NOW);
  assert.deepEqual(forGqa.map((o) => [o.name, o.disabled === undefined]), [
    ["gqa-run · 3 Dec 08:00", true],
    ["train-quick · 4 Dec 10:30", false],
    ["train-quick · 2 Dec 14:03", false],
  ]);

  // A run in progress is listed as soon as it starts, and can be chosen once it is done.
  writeRun(root, "live", { name: "train-standard", createdAt: at(2025, 12, 5, 8, 59), status: "running", model: DEMO_MODEL });
  const manager = new RunManager(root, {} as Launcher, () => "auto", () => {});
  const running = { ...manager.get("live")!, status: "running" as const }; // as the manager reports a live run
  const withLive = adapterOptions([running, ...manager.list().filter((r) => r.id !== "live")], DEMO_MODEL, label, NOW);
  const live = withLive.find((o) => o.path === path.join(root, "live"))!;
  assert.equal(live.label, "train-standard · 5 Dec 08:59 · running");
  assert.match(live.disabled ?? "", /still training/);
});

test("LoRA adapters (PEFT's layout) are checked against the model's shapes from config.json and the safetensors header, in words", () => {
  const demo = readModelConfig(DEMO_MODEL); // hidden 128, 4 heads of 32, 2 KV heads, MLP 384, 4 layers
  const gqa = readModelConfig(path.join(GQA, "model")); // hidden 64, 8 heads, MLP 112, 4 layers
  const forDemo = tempDir();
  LoraAdapter.create(demo, { r: 4, alpha: 8, targets: ["q_proj", "v_proj", "down_proj"], layers: [2, 3], seed: 1 }).save(forDemo);
  assert.equal(incompatibility(forDemo, demo), undefined, "the model it was made for");
  assert.equal(adapterMisfit(forDemo, DEMO_MODEL), undefined);
  assert.equal(adapterKind(forDemo), "LoRA");
  assert.equal(adapterKind(path.join(GQA, "adapter")), "Excitor");
  // Another model: its first target's in and out features, its and ours.
  assert.equal(incompatibility(forDemo, gqa), "it was trained for a model whose q_proj maps 128 to 128 features; this model's maps 64 to 64");
  // Layers beyond the model's.
  const twoLayers = readModelConfig(writeTinyModel(path.join(tempDir(), "m"), { layers: 2 }));
  assert.equal(incompatibility(forDemo, twoLayers), "it adapts layer 2 and this model has 2 layers (0–1)");
  // A config whose rank disagrees with its tensors.
  const wrongRank = tempDir();
  fs.cpSync(forDemo, wrongRank, { recursive: true });
  const cfg = JSON.parse(fs.readFileSync(path.join(wrongRank, "adapter_config.json"), "utf8"));
  fs.writeFileSync(path.join(wrongRank, "adapter_config.json"), JSON.stringify({ ...cfg, r: 8 }));
  assert.equal(incompatibility(wrongRank, demo), "q_proj in layer 2 has LoRA tensors A [4,128] and B [128,4]; adapter_config.json says rank r 8");
  // A config naming a module the weights lack.
  const moreTargets = tempDir();
  fs.cpSync(forDemo, moreTargets, { recursive: true });
  fs.writeFileSync(path.join(moreTargets, "adapter_config.json"), JSON.stringify({ ...cfg, target_modules: ["q_proj", "k_proj", "v_proj", "down_proj"] }));
  assert.equal(incompatibility(moreTargets, demo), "adapter_model.safetensors has no LoRA A tensor for k_proj in layer 2");
  // PEFT's unsupported variants are refused by name.
  const dora = tempDir();
  fs.cpSync(forDemo, dora, { recursive: true });
  fs.writeFileSync(path.join(dora, "adapter_config.json"), JSON.stringify({ ...cfg, use_dora: true }));
  assert.match(incompatibility(dora, demo) ?? "", /"use_dora" is true; DoRA adapters are not supported/);
});

test("LoRA runs are labelled as such in the chat's adapter list and the attention picker; Excitor runs read as before", () => {
  const root = tempDir();
  writeRun(root, "excitor", { name: "train-quick", createdAt: at(2025, 12, 4, 10, 30), status: "done", model: DEMO_MODEL, adapter: "demo" });
  const lora = tempDir();
  LoraAdapter.create(readModelConfig(DEMO_MODEL), { seed: 2 }).save(lora);
  writeRun(root, "lora", { name: "train-custom-lora", createdAt: at(2025, 12, 4, 11, 0), status: "done", model: DEMO_MODEL, adapter: lora });
  const gqaLora = tempDir();
  LoraAdapter.create(readModelConfig(path.join(GQA, "model")), { seed: 3 }).save(gqaLora);
  writeRun(root, "gqa-lora", { name: "gqa-lora", createdAt: at(2025, 12, 3, 8, 0), status: "done", model: path.join(GQA, "model"), adapter: gqaLora });
  const options = adapterOptions(listRuns(root), DEMO_MODEL, label, NOW);
  assert.deepEqual(
    options.map((o) => [o.label, o.disabled ?? ""]),
    [
      ["train-custom-lora · 4 Dec 11:00 · LoRA · done", ""],
      ["train-quick · 4 Dec 10:30 · done", ""],
      ["gqa-lora · 3 Dec 08:00 · LoRA · done — for model", "not for built-in demo model: it was trained for a model whose q_proj maps 64 to 64 features; this model's maps 128 to 128"],
    ],
  );
  const choices = attentionChoices({ model: DEMO_MODEL, adapter: null }, listRuns(root), label);
  assert.deepEqual(
    choices.map((c) => [c.label, c.description.split(" · ")[0]]),
    [
      ["train-custom-lora", "LoRA"],
      ["train-quick", "done"],
      ["gqa-lora", "LoRA"],
      ["No adapter (base model only)", "built-in demo model"],
    ],
  );
  // The chat's own adapter, when it is a LoRA one, says so too.
  const chatLora = attentionChoices({ model: DEMO_MODEL, adapter: path.join(root, "lora") }, listRuns(root), label);
  assert.deepEqual([chatLora[0].label, chatLora[0].description], ["The chat's adapter: lora", "LoRA · built-in demo model"]);
});
