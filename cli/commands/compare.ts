/**
 * `excitor compare`: Excitor against LoRA and full fine-tuning on the same data, steps and seed,
 * each at three learning rates (engine/compare). Progress on stderr, or with --json one event per
 * line on stdout (compare-start, compare-run, the runs' own train events, compare-done), which is
 * how the VS Code command "Excitor: Compare Methods" follows it.
 */
import * as path from "node:path";
import type { Command } from "commander";
import { CompareCancelled, compareMethods, type CompareEvent } from "../../engine/compare/run";
import { writeCompareReport } from "../../engine/compare/report";
import type { BackendChoice } from "../../engine/load";
import { COMPARE_RECIPE } from "../../engine/train/recipe";
import { EXIT } from "../errors";
import { COMPARE_RANGES, TRAIN_RANGES as R } from "../../engine/option-ranges";
import { intListOption, numberOption, type Runner } from "../options";
import { interruptSignal, refuseBaseUpdate, stdinStopSignal } from "../session";

interface Opts {
  model: string;
  data: string;
  heldout?: string;
  domain?: string;
  out: string;
  backend: BackendChoice;
  seed: number;
  epochs: number;
  batchSize: number;
  prompts: number;
  rank: number;
  layers?: number[];
  retainWeight: number;
  attentionRecords: number;
  json?: boolean;
  stdinControl?: boolean;
}


export function registerCompare(program: Command, run: Runner): void {
  program
    .command("compare")
    .description("train Excitor, LoRA and full fine-tuning on the same data (3 learning rates each) and report accuracy against forgetting")
    .requiredOption("--model <dir>", "base model folder (Hugging Face layout; not a .gguf file: full fine-tuning cannot update its weights)")
    .requiredOption("--data <file>", "training data (Alpaca, chat or ShareGPT records)")
    .option("--heldout <file>", "held-out Alpaca records the answers are judged on (default: the data's validation split)")
    .option("--domain <file>", "text the base model knows (JSON Lines with a \"text\" field, or a .txt file of paragraphs): its perplexity before and after (default: 64 texts the base model writes)")
    .option("--out <dir>", "folder for report.md, report.json, accuracy-vs-retention.svg and the runs", "out/compare")
    .addOption(numberOption("--seed <n>", "one seed for every run", R.seed, 0))
    .addOption(numberOption("--epochs <n>", "passes over the data, the same for every run", R.epochs, COMPARE_RECIPE.epochs))
    .addOption(numberOption("--batch-size <n>", "examples per step, the same for every run", R.batchSize, COMPARE_RECIPE.batchSize))
    .addOption(numberOption("--prompts <K>", "Excitor: prompts per adapted layer", R.numPrompts, COMPARE_RECIPE.numPrompts))
    .addOption(numberOption("--rank <r>", "Excitor: rank of the Excitor query", R.rank, COMPARE_RECIPE.rank))
    .addOption(intListOption("--layers <list>", "Excitor: adapted layers (default: the spec's)"))
    .addOption(numberOption("--retain-weight <x>", "weight of the KL-to-base term on the base model's own text, for every method alike (0: off)", R.retainWeight, 0))
    .addOption(numberOption("--attention-records <n>", "held-out prompts whose attention is measured", COMPARE_RANGES.attentionRecords, 20))
    .option("--json", "print progress as JSON lines on stdout")
    .option("--stdin-control", 'for editors: a line "stop" on stdin, or its end, stops the comparison')
    .action(run(async (cmd) => compareCommand(cmd.optsWithGlobals<Opts>())));
}

async function compareCommand(o: Opts): Promise<number> {
  refuseBaseUpdate("compare's full fine-tuning run", o.model, "stored", "compare on the model's Hugging Face folder, or train Excitor and LoRA adapters on the GGUF file with excitor train --method excitor|lora");
  const interrupt = interruptSignal();
  const control = o.stdinControl ? stdinStopSignal() : undefined;
  const say = (line: string) => process.stderr.write(line + "\n");
  let lastStep = 0;
  const onEvent = (e: CompareEvent) => {
    if (o.json) {
      process.stdout.write(JSON.stringify(e.type === "compare-train" ? { ...e.event, run: e.index } : e) + "\n");
      return;
    }
    if (e.type === "compare-run") say(`run ${e.index + 1}/${e.runs}: ${e.method} (${e.config})`);
    if (e.type === "compare-train" && e.event.type === "done")
      say(`  ${e.event.step} steps, validation loss ${e.event.validationLoss?.toFixed(4) ?? "-"}${e.event.retention ? `, KL to base ${e.event.retention.kl.toFixed(4)}` : ""}`);
    if (e.type === "compare-train" && e.event.type === "step" && e.event.step - lastStep >= 50) {
      lastStep = e.event.step;
      say(`  step ${e.event.step}/${e.event.totalSteps} loss ${e.event.loss.toFixed(4)}`);
    }
    if (e.type === "compare-train" && e.event.type === "start") lastStep = 0;
  };
  try {
    const result = await compareMethods({
      modelDir: o.model,
      dataFile: o.data,
      heldoutFile: o.heldout,
      domainFile: o.domain,
      outDir: o.out,
      backend: o.backend,
      seed: o.seed,
      epochs: o.epochs,
      batchSize: o.batchSize,
      microBatch: Math.min(o.batchSize, 16),
      excitor: { numPrompts: o.prompts, rank: o.rank, layers: o.layers },
      retainWeight: o.retainWeight,
      attentionRecords: o.attentionRecords,
      signal: control ? AbortSignal.any([interrupt.signal, control.signal]) : interrupt.signal,
      onEvent,
    });
    const report = writeCompareReport(o.out, result, { model: o.model, data: o.data });
    if (o.json) process.stdout.write(JSON.stringify({ type: "compare-done", report: path.resolve(report) } satisfies CompareEvent) + "\n");
    else say(`report written to ${report}`);
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CompareCancelled) {
      say("excitor: compare stopped; no report written");
      return EXIT.interrupted;
    }
    throw e;
  } finally {
    interrupt.dispose();
    control?.dispose();
  }
}
