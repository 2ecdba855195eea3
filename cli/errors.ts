/**
 * The CLI's one error path. Scripts and editors depend on the shape of failure, so there are
 * exactly three outcomes: the user's input is wrong (one line `excitor: error: ...`, exit 2),
 * commander rejected the command line (same shape, exit 2), or something is broken inside
 * Excitor (the message, the stack only with EXCITOR_DEBUG=1, exit 1).
 */
import { CommanderError } from "commander";
import { ExcitorInputError } from "../engine/errors";

export const EXIT = { ok: 0, internal: 1, usage: 2, interrupted: 130 } as const;

/** Prints `e` to stderr as the CLI reports failures and returns the exit code to use. */
export function reportError(e: unknown): number {
  if (e instanceof CommanderError) {
    // --help / --version throw through exitOverride() too; they have printed and succeeded.
    if (e.exitCode === 0) return EXIT.ok;
    // Help written to stderr because the command line was incomplete: it is the message.
    if (e.code === "commander.help") return EXIT.usage;
    printLine(`excitor: error: ${oneLine(e.message.replace(/^error:\s*/i, ""))}`);
    return EXIT.usage;
  }
  if (e instanceof ExcitorInputError) {
    printLine(`excitor: error: ${oneLine(e.message)}`);
    return EXIT.usage;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  if (process.env.EXCITOR_DEBUG === "1") {
    process.stderr.write(`excitor: internal error: ${err.stack ?? err.message}\n`);
  } else {
    printLine(`excitor: internal error: ${oneLine(err.message)} (set EXCITOR_DEBUG=1 for the stack trace)`);
  }
  return EXIT.internal;
}

/** Collapses any line breaks (commander's "Did you mean" hints, wrapped library messages). */
export function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, " ").trim();
}

function printLine(s: string): void {
  process.stderr.write(s + "\n");
}
