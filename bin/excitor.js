#!/usr/bin/env node
// The `excitor` command: the compiled CLI (npm ci builds it through the "prepare" script).
require("../dist/cli/main.js").main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
