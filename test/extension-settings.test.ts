/** Settings and run specs: what the user configures becomes the exact `excitor train` command line. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { buildProgram } from "../cli/main";
import { DEFAULT_SETTINGS, readSettings } from "../extension/settings";
import { EDITABLE, checkField, editableFor, methodSummary, parseLayers, parseLoraTargets, recipeSummary, specFromPreset, trainArgs, withMethod } from "../extension/run-spec";

const from = (values: Record<string, unknown>) => readSettings((k) => values[k]);

test("no settings: the defaults, and no problems", () => {
  const r = from({});
  assert.deepEqual(r.settings, DEFAULT_SETTINGS);
  assert.deepEqual(r.problems, []);
});

test("valid settings are taken as given", () => {
  const r = from({ modelFolder: " /models/llama ", backend: "tfjs-node", threads: 4, runsFolder: "/runs", "train.epochs": 5, "train.learningRate": 0.01, "train.validationShare": 0.2, "chat.temperature": 0, "chat.maxTokens": 64 });
  assert.deepEqual(r.problems, []);
  assert.equal(r.settings.modelFolder, "/models/llama");
  assert.equal(r.settings.backend, "tfjs-node");
  assert.equal(r.settings.threads, 4);
  assert.equal(r.settings.train.epochs, 5);
  assert.equal(r.settings.train.learningRate, 0.01);
  assert.equal(r.settings.train.validationShare, 0.2);
  assert.equal(r.settings.chat.temperature, 0);
  assert.equal(r.settings.chat.maxTokens, 64);
});

test("wrong values fall back to the default, each reported naming its setting", () => {
  const r = from({ backend: "cuda", threads: -2, "train.epochs": 2.5, "train.batchSize": "16", "chat.topP": 0, modelFolder: 7 });
  assert.equal(r.settings.backend, "auto");
  assert.equal(r.settings.threads, 0);
  assert.equal(r.settings.train.epochs, DEFAULT_SETTINGS.train.epochs);
  assert.equal(r.settings.train.batchSize, DEFAULT_SETTINGS.train.batchSize);
  assert.equal(r.settings.chat.topP, DEFAULT_SETTINGS.chat.topP);
  assert.equal(r.settings.modelFolder, "");
  const named = ["excitor.backend", "excitor.threads", "excitor.train.epochs", "excitor.train.batchSize", "excitor.chat.topP", "excitor.modelFolder"];
  assert.equal(r.problems.length, named.length, r.problems.join("\n"));
  for (const n of named) assert.ok(r.problems.some((p) => p.startsWith(`${n}:`)), `${n} reported`);
});

test("presets scale steps and learning rate to the data: quick and standard on the demo data and on a 60-record file", () => {
  const d = DEFAULT_SETTINGS.train; // epochs 3, batch 16, everything else by the preset
  // The demo data: 800 records, 760 after the 5 % validation split.
  const quick = specFromPreset("quick", "/m", "/d.jsonl", d, 760);
  assert.deepEqual([quick.batchSize, quick.epochs, quick.maxSteps, quick.learningRate, quick.prompts, quick.rank], [8, 2, 120, 0.03, 30, 16], "95 steps an epoch: 120 steps over 2 epochs, at the capped rate");
  const standard = specFromPreset("standard", "/m", "/d.jsonl", d, 760);
  // 48 steps an epoch: 10 epochs reach 480 steps, a short run, at 3e-2.
  assert.deepEqual([standard.batchSize, standard.epochs, standard.maxSteps, standard.learningRate], [16, 10, undefined, 0.03]);
  assert.match(standard.recipe!, /^Standard: 760 training examples → 10 epochs, 480 steps of 16/);
  assert.equal(recipeSummary(standard, 760), "480 steps of 16 (10 epochs), learning rate 0.03, K 30, r 16");
  // A 60-record user file (57 train): far more passes, never the 8 steps the spec's recipe ran.
  const small = specFromPreset("quick", "/m", "/d.jsonl", d, 57);
  assert.deepEqual([small.epochs, small.maxSteps, small.learningRate], [15, undefined, 0.03], "8 steps an epoch × 15 = 120 steps");
  assert.equal(specFromPreset("standard", "/m", "/d.jsonl", d, 57).epochs, 100, "4 steps an epoch would need 120 epochs for 480 steps: capped at 100");
  // The user's own settings win in Standard.
  const mine = specFromPreset("standard", "/m", "/d.jsonl", { ...d, epochs: 10, batchSize: 32, prompts: 12, rank: 4, learningRate: 0.005 }, 760);
  assert.deepEqual([mine.epochs, mine.batchSize, mine.prompts, mine.rank, mine.learningRate], [20, 32, 12, 4, 0.005], "24 steps an epoch: 20 epochs for 480 steps");
});

test("a spec becomes the train command line, flags only for what is set", () => {
  const spec = { ...specFromPreset("standard", "/m", "/d.jsonl", DEFAULT_SETTINGS.train, 760), layers: [2, 3], learningRate: 0.005, prompts: undefined };
  assert.deepEqual(trainArgs(spec, "/out", false, "auto"), [
    "--backend", "auto", "train", "--json", "--stdin-control", "--model", "/m", "--data", "/d.jsonl", "--out", "/out",
    "--rank", "16", "--layers", "2,3", "--epochs", "10", "--lr", "0.005", "--batch-size", "16", "--max-length", "512", "--validation-share", "0.05", "--seed", "0",
  ]);
  assert.equal(trainArgs(spec, "/out", true, "auto").at(-1), "--resume");
});

test("custom hyperparameters are checked field by field", () => {
  const field = (key: string) => EDITABLE.find((f) => f.key === key)!;
  assert.equal(checkField(field("epochs"), "3"), undefined);
  assert.match(checkField(field("epochs"), "")!, /required/);
  assert.match(checkField(field("epochs"), "2.5")!, /whole number/);
  assert.match(checkField(field("epochs"), "abc")!, /not a number/);
  assert.equal(checkField(field("prompts"), ""), undefined, "optional: empty means the default");
  assert.match(checkField(field("validationShare"), "1")!, /must be between 0 and 0.99/);
  assert.equal(checkField(field("learningRate"), "3e-4"), undefined);
  assert.deepEqual(parseLayers(" 4, 5 6 "), [4, 5, 6]);
  assert.equal(parseLayers(""), undefined);
  assert.match(parseLayers("1,x") as string, /not a list of layer numbers/);
});

test("the Custom preset's method becomes --method, with each method's own flags only", () => {
  const standard = { ...specFromPreset("standard", "/m", "/d.jsonl", DEFAULT_SETTINGS.train, 760), layers: [2, 3] };
  const flags = (args: string[]) => args.filter((a) => a.startsWith("--"));
  const common = ["--epochs", "--lr", "--batch-size", "--max-length", "--validation-share", "--seed"];
  // Excitor (the default, and runs saved before methods existed): the command it always had.
  assert.deepEqual(trainArgs(withMethod(standard, "excitor"), "/out", false, "auto"), trainArgs(standard, "/out", false, "auto"));
  assert.ok(!trainArgs(standard, "/out", false, "auto").includes("--method"));

  // LoRA: its defaults are left to the CLI (PEFT's), Excitor's K and r never passed; the Excitor-sized learning rate is dropped.
  const lora = withMethod(standard, "lora");
  assert.equal(lora.learningRate, undefined);
  const loraArgs = trainArgs(lora, "/out", false, "auto");
  assert.deepEqual(loraArgs.slice(11, 13), ["--method", "lora"]);
  assert.deepEqual(flags(loraArgs).filter((f) => !["--backend", "--json", "--stdin-control", "--model", "--data", "--out"].includes(f)), ["--method", "--layers", "--epochs", "--batch-size", "--max-length", "--validation-share", "--seed"]);
  const tuned = trainArgs({ ...lora, loraR: 16, loraAlpha: 32, loraTargets: ["q_proj", "k_proj", "v_proj", "o_proj"], learningRate: 2e-4 }, "/out", false, "auto");
  const after = (flag: string) => tuned[tuned.indexOf(flag) + 1];
  assert.deepEqual([after("--lora-r"), after("--lora-alpha"), after("--lora-targets"), after("--lr"), after("--layers")], ["16", "32", "q_proj,k_proj,v_proj,o_proj", "0.0002", "2,3"]);

  // Full fine-tuning: every layer, no adapter knobs at all.
  const full = trainArgs(withMethod({ ...lora, loraR: 16 }, "full"), "/out", true, "auto");
  assert.deepEqual(flags(full).filter((f) => !["--backend", "--json", "--stdin-control", "--model", "--data", "--out"].includes(f)), ["--method", ...common.filter((f) => f !== "--lr"), "--resume"]);
  assert.equal(full[full.indexOf("--method") + 1], "full");

  // Switching back to Excitor keeps what was entered for the shared fields, not LoRA's knobs.
  const back = withMethod({ ...lora, loraR: 16, epochs: 4 }, "excitor");
  assert.deepEqual([back.loraR, back.epochs, back.method], [undefined, 4, "excitor"]);
});

test("the Custom form asks each method for its own fields, and the summary names the method with LoRA's defaults", () => {
  const keys = (m: "excitor" | "lora" | "full") => editableFor(m).map((f) => f.key);
  assert.deepEqual(keys("excitor").slice(0, 2), ["prompts", "rank"]);
  assert.equal(keys("excitor").length, 9, "with the layers, ten fields as before methods existed");
  assert.deepEqual(keys("lora").slice(0, 2), ["loraR", "loraAlpha"]);
  assert.ok(!keys("lora").includes("prompts") && !keys("full").includes("rank") && !keys("full").includes("loraR"));
  const spec = { ...specFromPreset("standard", "/m", "/d.jsonl", DEFAULT_SETTINGS.train, 760) };
  assert.equal(methodSummary(spec), "Excitor, K 30, r 16");
  assert.equal(methodSummary(withMethod(spec, "lora")), "LoRA r 8, alpha 16 on q_proj, v_proj");
  assert.equal(methodSummary({ ...withMethod(spec, "lora"), loraR: 4, loraTargets: ["q_proj"] }), "LoRA r 4, alpha 16 on q_proj");
  assert.equal(methodSummary(withMethod(spec, "full")), "full fine-tuning (every base weight)");
  assert.match(recipeSummary(withMethod(spec, "lora"), 760), /, the method's learning rate, LoRA r 8, alpha 16 on q_proj, v_proj$/);
  assert.match(recipeSummary(spec, 760), /, K 30, r 16$/);
  assert.deepEqual(parseLoraTargets(" v_proj, q_proj down_proj"), ["q_proj", "v_proj", "down_proj"], "in the model's order");
  assert.equal(parseLoraTargets(""), undefined);
  assert.equal(parseLoraTargets("q_proj,lm_head"), 'LoRA targets: "lm_head" is not a LLaMA linear layer (use q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)');
  const alpha = EDITABLE.find((f) => f.key === "loraAlpha")!;
  assert.equal(checkField(alpha, "0.5"), undefined, "alpha need not be whole");
  assert.match(checkField(alpha, "0")!, /must be greater than 0/);
});

test("the Custom form and the settings accept a number exactly when `excitor train` does", () => {
  const train = buildProgram(() => {}).commands.find((c) => c.name() === "train")!;
  const cliAccepts = (flag: string, v: number): boolean => {
    const opt = train.options.find((o) => o.long === flag)!;
    try {
      (opt.parseArg as (value: string, previous: unknown) => unknown)(String(v), undefined);
      return true;
    } catch {
      return false;
    }
  };
  const flags: Partial<Record<string, string>> = {
    prompts: "--prompts", rank: "--rank", loraR: "--lora-r", loraAlpha: "--lora-alpha", epochs: "--epochs", maxSteps: "--max-steps",
    learningRate: "--lr", batchSize: "--batch-size", maxLength: "--max-length", validationShare: "--validation-share", seed: "--seed",
  };
  const probes = [-1, 0, 1e-9, 1e-7, 0.5, 0.99, 0.995, 1, 2, 1000, 1001, 1024, 1025, 4096, 4097, 131072, 131073, 1e6, 1e7, 1e7 + 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 1e9];
  for (const field of EDITABLE) {
    const flag = flags[field.key]!;
    for (const v of probes) assert.equal(checkField(field, String(v)) === undefined, cliAccepts(flag, v), `${field.label} = ${v} vs ${flag}`);
  }
  // Settings: the same numbers, except that 0 stands for "the default" where the setting says so.
  const settingFlags = { epochs: "--epochs", batchSize: "--batch-size", maxLength: "--max-length", validationShare: "--validation-share", seed: "--seed", prompts: "--prompts", rank: "--rank", learningRate: "--lr" } as const;
  for (const [key, flag] of Object.entries(settingFlags)) {
    for (const v of probes) {
      const taken = readSettings((k) => (k === `train.${key}` ? v : undefined)).problems.length === 0;
      const zeroIsDefault = v === 0 && (key === "prompts" || key === "rank" || key === "learningRate");
      assert.equal(taken, zeroIsDefault || cliAccepts(flag, v), `excitor.train.${key} = ${v} vs ${flag}`);
    }
  }
});
