/**
 * `excitor export-job`: the same Excitor run as `excitor train`, written as a PyTorch job for
 * `torchrun` on machines with GPUs (engine/export/torch-job.ts). The base model must be a Hugging
 * Face folder (the job reads its safetensors); the model's weights are checked here, not copied.
 */
import * as path from "node:path";
import type { Command } from "commander";
import { gpuMemory } from "../../engine/export/gpu-memory";
import { exportJob } from "../../engine/export/torch-job";
import { isGgufPath } from "../../engine/formats/gguf";
import { ExcitorInputError } from "../../engine/errors";
import { readModelConfig } from "../../engine/model/config";
import { WeightFiles } from "../../engine/model/weights";
import { EXIT } from "../errors";
import { fmtInt } from "../format";
import type { Runner } from "../options";
import { openTokenizer } from "../session";
import { recipeOptions, stepOptions, withPreset, type RecipeOpts } from "./train";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const VERSION: string = require("../../../package.json").version;

interface Opts extends RecipeOpts {
  model: string;
  out: string;
}

export function registerExportJob(program: Command, run: Runner): void {
  recipeOptions(
    program
      .command("export-job")
      .description("write the same Excitor run as a PyTorch job for torchrun (one or many GPU machines, DDP or FSDP)")
      .requiredOption("--model <dir>", "base model: a Hugging Face folder with safetensors weights (the job reads them on the cluster)")
      .requiredOption("--data <file>", "dataset: JSON Lines or a JSON array of Alpaca, chat or ShareGPT records (tokenized here, into the job)")
      .requiredOption("--out <dir>", "new folder for the job (excitor_torch/, run.sh, data, README.md)"),
  ).action(run(async (cmd) => exportCommand(withPreset({ ...cmd.optsWithGlobals<Opts>(), method: "excitor" }, (name) => cmd.getOptionValueSource(name) === "cli"))));
}

function exportCommand(o: Opts): number {
  if (isGgufPath(o.model))
    throw new ExcitorInputError(`${o.model}: the PyTorch job reads a Hugging Face folder (config.json, safetensors); a GGUF file is read by Excitor's own engine only (excitor train)`, o.model);
  const config = readModelConfig(o.model);
  WeightFiles.open(o.model, config); // the checkpoint must hold the weights the config names, as the job will read them
  const tok = openTokenizer(o.model);
  const job = exportJob(config, tok, {
    dataFile: o.data,
    baseModel: o.model,
    outDir: o.out,
    version: VERSION,
    numPrompts: o.prompts,
    rank: o.rank,
    layers: o.layers,
    ...stepOptions(o),
  });
  const plan = { gpus: 8, microBatch: o.microBatch, seqLen: Math.min(o.maxLength, config.maxPositions), checkpointing: false, numPrompts: o.prompts, rank: o.rank, layers: o.layers };
  const gib = (fsdp: boolean, checkpointing: boolean) => `${(gpuMemory(config, { ...plan, fsdp, checkpointing }).total / 2 ** 30).toFixed(1)} GiB`;
  const rel = path.relative(process.cwd(), job.dir).startsWith("..") ? job.dir : path.relative(process.cwd(), job.dir) || ".";
  process.stdout.write(
    [
      `job              ${job.dir}`,
      `examples         ${fmtInt(job.trainExamples)} training, ${fmtInt(job.validationExamples)} validation (tokenized)`,
      `steps            ${fmtInt(job.totalSteps)} of batch ${o.batchSize}`,
      `trainable params ${fmtInt(job.trainableParams)}`,
      `memory per GPU   DDP ${gib(false, false)}, FSDP over 8 GPUs ${gib(true, false)}; with --activation-checkpointing ${gib(false, true)} and ${gib(true, true)} (bf16, micro-batch ${plan.microBatch} × ${plan.seqLen} tokens; estimate)`,
      `run it           bash ${path.join(rel, "run.sh")}   (all GPUs here; README.md there for several machines, Slurm and --fsdp)`,
      `then             copy ${path.join(rel, "run")} back and open it in the Runs view, or: excitor chat --model ${o.model} --adapter ${path.join(rel, "run")}`,
    ].join("\n") + "\n",
  );
  return EXIT.ok;
}
