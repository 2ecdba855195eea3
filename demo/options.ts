/**
 * The demo program's command line (`npm run demo -- OPTIONS`, `node dist/demo/run.js OPTIONS`),
 * for the text demo and the multimodal one (--vision). `--help` prints the options and exits; an
 * unknown option or a bad value ends with one line naming it and the valid options, exit 2, before
 * anything runs.
 */
import * as path from "node:path";
import { Command, CommanderError, Option } from "commander";
import { BACKEND_CHOICES, type BackendChoice } from "../engine/load";
import { SAMPLING_RANGES, TRAIN_RANGES } from "../engine/option-ranges";
import { DEMO_RECIPE } from "../engine/train/recipe";
import { numberOption } from "../cli/options";
import { ExcitorInputError } from "../engine/errors";

export interface DemoOptions {
  vision: boolean;
  /** The text demo's base model (the multimodal demo always uses demo/model). */
  model: string;
  out: string;
  steps?: number;
  seed: number;
  backend: BackendChoice;
  json: boolean;
  /** λ of the KL-to-base term that keeps the base model's knowledge (the demo recipe's). */
  retainWeight: number;
}

const repo = path.resolve(__dirname, "../..");

function program(): Command {
  return new Command("demo")
    .usage("[options]   (npm run demo -- [options])")
    .description("Tune an Excitor adapter on the built-in demo (the demo model and its story questions), then report what changed.")
    .option("--out <dir>", "folder for the adapter, metrics, report.md and loss.svg (default: out/demo, out/demo-vision with --vision)")
    .addOption(numberOption("--steps <n>", "stop after this many optimizer steps (default: the recipe's epochs)", TRAIN_RANGES.maxSteps))
    .addOption(numberOption("--seed <n>", "random seed: adapter init, data order, validation split", SAMPLING_RANGES.seed, 0))
    .addOption(new Option("--backend <name>", "tensor backend").choices(BACKEND_CHOICES).default("auto"))
    .addOption(new Option("--model <dir>", "the base model of the text demo").default(path.join(repo, "demo", "model"), "demo/model"))
    .addOption(numberOption("--retain-weight <x>", "λ of the KL-to-base term on the base model's own samples, against forgetting (0: off)", TRAIN_RANGES.retainWeight, DEMO_RECIPE.retainWeight))
    .option("--json", "print each training event as one JSON line on stdout and the narration on stderr (how the VS Code extension runs it)")
    .option("--vision", "the multimodal demo: pictures of shapes, read through a CLIP-style encoder")
    .helpOption("-h, --help", "print these options")
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: () => {} })
    .allowExcessArguments(false);
}

/** The options, or the exit code when there is nothing to run (--help: 0; a bad command line: 2, after one line on stderr). */
export function parseDemoOptions(argv: string[]): DemoOptions | number {
  const p = program();
  try {
    p.parse(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError && e.exitCode === 0) return 0; // --help
    if (!(e instanceof CommanderError) && !(e instanceof ExcitorInputError)) throw e;
    const valid = [...p.options.map((o) => o.long), "--help"].join(", ");
    const what = e.message.replace(/^error:\s*/i, "").replace(/\s*\n\s*/g, " ").replace(/\.$/, "");
    process.stderr.write(`excitor demo: error: ${what}; the options are ${valid} (npm run demo -- --help)\n`);
    return 2;
  }
  const o = p.opts<{ out?: string; steps?: number; seed: number; backend: BackendChoice; model: string; retainWeight: number; json?: boolean; vision?: boolean }>();
  const vision = o.vision === true;
  return {
    vision,
    model: path.resolve(o.model),
    out: path.resolve(o.out ?? path.join(repo, "out", vision ? "demo-vision" : "demo")),
    steps: o.steps,
    seed: o.seed,
    backend: o.backend,
    json: o.json === true,
    retainWeight: o.retainWeight,
  };
}
