/**
 * The `excitor` command line. `bin/excitor.js` calls `main(argv)` and exits with the code it
 * returns, so nothing here calls process.exit: commander's exitOverride() turns its own exits
 * (usage errors, --help, --version) into exceptions that end up in the one error path
 * (cli/errors.ts), which prints a one-line message and picks the exit code.
 */
import { Command, Option } from "commander";
import { ExcitorInputError } from "../engine/errors";
import { BACKEND_CHOICES } from "../engine/load";
import { registerAttention } from "./commands/attention";
import { registerChat } from "./commands/chat";
import { registerCompare } from "./commands/compare";
import { registerExportJob } from "./commands/export-job";
import { registerGenerate } from "./commands/generate";
import { registerInfo } from "./commands/info";
import { registerScore } from "./commands/score";
import { registerServe } from "./commands/serve";
import { registerTokenize } from "./commands/tokenize";
import { stopForDriver } from "./session";
import { registerTrain } from "./commands/train";
import { reportError } from "./errors";
import { makeRunner } from "./options";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const VERSION: string = require("../../package.json").version;

export async function main(argv: string[]): Promise<number> {
  quietOnClosedPipe();
  let code = 0;
  const program = buildProgram((c) => (code = c));
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (e) {
    return reportError(e);
  }
}

/** The whole command tree (exported for tests that check every option). */
export function buildProgram(setCode: (code: number) => void): Command {
  const program = new Command("excitor")
    .description("Instruction-tune a LLaMA-family model with LLaMA-Excitor, chat with it, and see how tuning moved its attention.")
    .version(VERSION)
    .addOption(new Option("--backend <name>", "tensor backend").choices(BACKEND_CHOICES).default("auto"))
    // Settings made before .command() are inherited by every subcommand.
    .exitOverride()
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
      outputError: () => {}, // reportError prints usage errors as one line
    })
    .configureHelp({ showGlobalOptions: true, sortOptions: false })
    .showSuggestionAfterError(true)
    .helpCommand(true)
    .usage("[--backend <name>] <command> [options]")
    .argument("[command]")
    .action((name: string | undefined) => {
      // Only reached without a known command (known ones dispatch to their own action).
      throw new ExcitorInputError(
        name === undefined ? "no command given; run `excitor --help` for the commands" : `unknown command '${name}'; run \`excitor --help\` for the commands`,
      );
    });
  const run = makeRunner(setCode);
  registerTrain(program, run);
  registerCompare(program, run);
  registerExportJob(program, run);
  registerGenerate(program, run);
  registerChat(program, run);
  registerScore(program, run);
  registerTokenize(program, run);
  registerAttention(program, run);
  registerInfo(program, run);
  registerServe(program, run);
  return program;
}

let pipeGuarded = false;

/**
 * `excitor generate ... | head`: when the reader goes away, stop quietly instead of crashing on
 * EPIPE. An editor-driven run (--stdin-control) instead stops at its next step with a checkpoint:
 * its editor went away (a window reload), and the run is to be resumed.
 */
function quietOnClosedPipe(): void {
  if (pipeGuarded) return;
  pipeGuarded = true;
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (stopForDriver()) return;
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
}
