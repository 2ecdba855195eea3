/**
 * The `excitor` command line as a child process, for the tests of its output contracts: run it
 * (`excitor`), and check the user-error contract (`assertUserError`). Compiled tests run from
 * dist/test/helpers, so bin/ is three levels up.
 */
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";

export const BIN = path.resolve(__dirname, "../../../bin/excitor.js");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `excitor ARGS` to completion (stdin: `input`), without the debug stack traces. */
export function excitor(args: string[], input?: string, timeoutMs = 120_000): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", input, timeout: timeoutMs, maxBuffer: 256 * 2 ** 20, env: { ...process.env, EXCITOR_DEBUG: "" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Asserts the user-error contract: exit 2 and exactly one stderr line `excitor: error: ...` containing each of `mentions`. */
export function assertUserError(r: Pick<CliResult, "code" | "stderr">, ...mentions: string[]): void {
  assert.equal(r.code, 2, `exit code 2 expected; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one stderr line expected, got: ${r.stderr}`);
  assert.match(lines[0], /^excitor: error: \S/);
  for (const m of mentions) assert.ok(lines[0].includes(m), `"${lines[0]}" should mention ${m}`);
}
