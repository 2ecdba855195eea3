/**
 * `excitor export-job`: a self-contained PyTorch training job for `torchrun` that trains the same
 * Excitor adapter as `excitor train` would, on a cluster. The job carries the examples already
 * tokenized and masked (so tokenization cannot differ), the engine's split, plan and initial
 * adapter, and a copy of the `excitor_torch` package (the template beside this file, torch-job/).
 * What it writes back is a run folder in the project's layout (adapter, metrics.jsonl, checkpoint,
 * run.json) that the extension opens like a local run.
 *
 * Written into a temporary sibling folder, then renamed: a failed export leaves nothing behind.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError, check } from "../errors";
import { ExcitorAdapter } from "../excitor/adapter";
import { excitorConfigJson } from "../excitor/config";
import { countBaseParameters, type ModelConfig } from "../model/config";
import { ropeInverseFrequencies } from "../model/rope";
import type { TextTokenizer } from "../tokenizer/tokenizer";
import { fsFailure, makeDirs } from "../fs-errors";
import { writeFileAtomic } from "../fs-atomic";
import { excitorSize, padId, readRunData, runFingerprint, stepPlan, type TrainOptions } from "../train/trainer";
import { checkModelRanges, checkTrainRanges } from "../option-ranges";
import { RETAIN_DEFAULT } from "../train/retention";

/** What the job trains: the options of `excitor train` that an Excitor run on a cluster keeps. */
export type ExportJobOptions = Pick<
  TrainOptions,
  | "dataFile" | "baseModel" | "numPrompts" | "rank" | "layers" | "epochs" | "maxSteps" | "batchSize" | "microBatch" | "learningRate"
  | "warmupShare" | "weightDecay" | "gradClip" | "maxLength" | "validationShare" | "seed" | "checkpointEvery" | "evalEvery"
> & { outDir: string; version: string };

export interface ExportedJob {
  dir: string;
  totalSteps: number;
  trainExamples: number;
  validationExamples: number;
  trainableParams: number;
}

/** The job's format, read by excitor_torch/train.py. */
export const JOB_FORMAT = { name: "excitor-torch-job", version: 1 };

/** The template folder: beside the compiled module in a bundle, or in the source tree. */
export function templateDir(): string {
  const candidates = [path.join(__dirname, "torch-job"), path.resolve(__dirname, "../../../engine/export/torch-job")];
  const found = candidates.find((d) => fs.existsSync(path.join(d, "excitor_torch", "train.py")));
  if (!found) throw new Error(`the PyTorch job template is missing (looked in ${candidates.join(", ")}); reinstall Excitor`);
  return found;
}

export function exportJob(config: ModelConfig, tok: TextTokenizer, o: ExportJobOptions): ExportedJob {
  checkTrainRanges(o);
  checkModelRanges(o, config);
  for (const l of o.layers ?? [])
    check(Number.isInteger(l) && l >= 0 && l < config.numLayers, `--layers: layer ${l} does not exist (the model has layers 0..${config.numLayers - 1})`);
  const out = path.resolve(o.outDir);
  if (fs.existsSync(out) && (!fs.statSync(out).isDirectory() || fs.readdirSync(out).length > 0))
    throw new ExcitorInputError(`--out ${o.outDir}: already exists and is not an empty folder; export into a new folder`, o.outDir);

  const data = readRunData(o, config, tok);
  const plan = stepPlan(data.trainSet.length, o);
  check(plan.totalSteps > 0, `${o.dataFile}: no training example is left after the validation split; add examples or lower --validation-share`);
  const size = excitorSize(config);
  const baseModel = path.resolve(o.baseModel);
  const adapter = ExcitorAdapter.create(config, {
    numPrompts: o.numPrompts ?? size.numPrompts,
    rank: o.rank ?? size.rank,
    layers: o.layers,
    seed: o.seed,
    baseModel,
    extra: { template: data.template },
  });
  const fingerprint = runFingerprint({ method: "excitor", seed: o.seed, batchSize: o.batchSize, learningRate: o.learningRate, validationShare: o.validationShare }, data.examples, adapter, plan.totalSteps, RETAIN_DEFAULT, 0);
  const job = {
    format: JOB_FORMAT.name,
    formatVersion: JOB_FORMAT.version,
    exportedBy: `excitor ${o.version}`,
    baseModel,
    model: { ...config, ropeInverseFrequencies: Array.from(ropeInverseFrequencies(config)) },
    adapter: { layers: adapter.config.layers, num_prompts: adapter.config.numPrompts, rank: adapter.config.rank, config: JSON.parse(excitorConfigJson(adapter.config)) as Record<string, unknown> },
    recipe: {
      epochs: o.epochs,
      totalSteps: plan.totalSteps,
      stepsPerEpoch: plan.stepsPerEpoch,
      batchSize: o.batchSize,
      microBatch: o.microBatch,
      learningRate: plan.peakLr,
      warmupSteps: plan.warmup,
      weightDecay: o.weightDecay,
      gradClip: o.gradClip,
      checkpointEvery: o.checkpointEvery,
      evalEvery: o.evalEvery,
    },
    seed: o.seed,
    padId: padId(tok),
    fingerprint,
    baseParams: countBaseParameters(config),
    truncatedExamples: data.truncated.length,
    truncatedNote: data.truncated.length
      ? `${data.truncated.length} example(s) longer than ${data.maxLength} tokens were truncated (first: ${o.dataFile}:${data.truncated[0].line})`
      : "",
    run: {
      name: `${path.basename(o.dataFile).replace(/\.[^.]+$/, "")} (torchrun)`,
      createdAt: new Date().toISOString(),
      // The Runs view's spec (extension/run-spec.ts RunSpec): Resume there continues the run locally with it.
      spec: {
        kind: "train",
        model: baseModel,
        data: path.resolve(o.dataFile),
        method: "excitor",
        prompts: adapter.config.numPrompts,
        rank: adapter.config.rank,
        layers: adapter.config.layers,
        epochs: o.epochs,
        ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}),
        ...(o.learningRate !== undefined ? { learningRate: o.learningRate } : {}),
        batchSize: o.batchSize,
        maxLength: o.maxLength,
        validationShare: o.validationShare,
        seed: o.seed,
      },
    },
  };

  const parent = path.dirname(out);
  makeDirs(parent);
  const tmp = path.join(parent, `.${path.basename(out)}.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    fs.cpSync(templateDir(), tmp, { recursive: true, filter: (src) => !/__pycache__|\.pyc$/.test(src) });
    adapter.save(path.join(tmp, "init"));
    const lines = (xs: typeof data.examples) => xs.map((e) => JSON.stringify({ line: e.line, ids: e.ids, mask: Array.from(e.lossMask).join("") }) + "\n").join("");
    writeFileAtomic(path.join(tmp, "data", "train.jsonl"), lines(data.trainSet));
    writeFileAtomic(path.join(tmp, "data", "validation.jsonl"), lines(data.validation));
    writeFileAtomic(path.join(tmp, "job.json"), JSON.stringify(job, null, 2) + "\n");
    fs.chmodSync(path.join(tmp, "run.sh"), 0o755);
    if (fs.existsSync(out)) fs.rmdirSync(out); // empty, checked above
    fs.renameSync(tmp, out);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw fsFailure(e, out, "write the job folder");
  }
  return { dir: out, totalSteps: plan.totalSteps, trainExamples: data.trainSet.length, validationExamples: data.validation.length, trainableParams: adapter.parameterCount };
}
