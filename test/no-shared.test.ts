/**
 * A user's clone has nothing beside it: no test, script, build step or program may read the
 * project's shared folder next to the repository. Every path literal in the tracked sources is
 * checked (comments may cite the spec).
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

const REPO = path.resolve(__dirname, "../..");
/** The folder's name, spelled in pieces so that this file does not name the path it looks for. */
const SHARED = ["sha", "red"].join("");

test("no tracked source, script or config reads the shared folder beside the repository", () => {
  const files = execFileSync("git", ["ls-files"], { cwd: REPO, encoding: "utf8" })
    .split("\n")
    .filter((f) => f === ".ci/run" || /\.(ts|js|mjs|cjs|sh|py|json)$/.test(f))
    .filter((f) => !/^(test\/fixtures|demo\/model|demo\/data)\//.test(f));
  assert.ok(files.length > 50, `expected the repository's sources, found ${files.length} files`);
  // A string literal naming the folder: "<dotdot>/<it>", "<it>/fixtures", "<it>/docs", "/work/<it>".
  const literal = new RegExp(`["'\`][^"'\`\\n]*(\\.\\./${SHARED}|${SHARED}/(fixtures|docs)|/work/${SHARED})[^"'\`\\n]*["'\`]`);
  const offenders: string[] = [];
  for (const f of files) {
    fs.readFileSync(path.join(REPO, f), "utf8").split("\n").forEach((line, i) => {
      if (literal.test(line) && !/^\s*(\/\/|\/?\*|#)/.test(line)) offenders.push(`${f}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(offenders, []);
});
