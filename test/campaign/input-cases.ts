/**
 * Malformed datasets, out-of-range options, unusable output folders and tampered checkpoints,
 * each given to the command that reads it.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { DEMO_DATA, DEMO_MODEL, editTensors, writeText } from "./files";
import type { Case } from "./outcome";

const ALPACA = (i: number) => JSON.stringify({ instruction: `What is ${i} plus one?`, output: ` It is ${i + 1}.` });
const GOOD_LINES = Array.from({ length: 12 }, (_, i) => ALPACA(i));
/** A fast training run: two examples a step, one step, no retention set. */
const TRAIN = ["train", "--model", DEMO_MODEL, "--max-steps", "1", "--batch-size", "2", "--retain", "none", "--json"];

export function dataCases(root: string): Case[] {
  const cases: Case[] = [];
  let n = 0;
  const data = (name: string, expect: Case["expect"], names: Case["names"], content: () => string | Buffer, ext = "jsonl", timeout?: number) => {
    const file = path.join(root, `data-${n}.${ext}`);
    const out = path.join(root, `data-out-${n++}`);
    cases.push({ group: "datasets", name, expect, names, args: [...TRAIN, "--data", file, "--out", out], timeout, setup: () => writeText(file, content()) });
  };
  const lines = (bad: string, at = 3) => [...GOOD_LINES.slice(0, at - 1), bad, ...GOOD_LINES.slice(at - 1)].join("\n") + "\n";
  const at3 = /:3\b/;
  data("empty file", "refuse", "data-", () => "");
  data("only blank lines", "refuse", "data-", () => "\n\n  \n");
  for (const [label, bad] of [
    ["null", "null"], ["a number", "42"], ["an array", "[1,2]"], ["a string", '"hello"'], ["cut-off JSON", '{"instruction": "a", "output'],
    ["no known fields", '{"foo": 1}'], ["Alpaca without output", '{"instruction": "Say hi"}'], ["instruction a number", '{"instruction": 7, "output": "x"}'],
    ["output null", '{"instruction": "a", "output": null}'], ["input a list", '{"instruction": "a", "input": ["x"], "output": "b"}'],
    ["messages empty", '{"messages": []}'], ["messages null", '{"messages": null}'], ["messages a string", '{"messages": "hi"}'],
    ["a message null", '{"messages": [null, {"role": "assistant", "content": "b"}]}'],
    ["a message with role wizard", '{"messages": [{"role": "wizard", "content": "a"}, {"role": "assistant", "content": "b"}]}'],
    ["a message with numeric content", '{"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "b"}]}'],
    ["a message without content", '{"messages": [{"role": "user"}, {"role": "assistant", "content": "b"}]}'],
    ["a message without role", '{"messages": [{"content": "a"}, {"role": "assistant", "content": "b"}]}'],
    ["ShareGPT conversations empty", '{"conversations": []}'],
    ["ShareGPT from robot", '{"conversations": [{"from": "robot", "value": "a"}, {"from": "gpt", "value": "b"}]}'],
    ["ShareGPT value null", '{"conversations": [{"from": "human", "value": null}, {"from": "gpt", "value": "b"}]}'],
  ] as const)
    data(`JSONL line 3 is ${label}`, "refuse", at3, () => lines(bad));
  data("invalid UTF-8 on line 5", "refuse", /:5\b/, () => Buffer.concat([Buffer.from(GOOD_LINES.slice(0, 4).join("\n") + "\n"), Buffer.from('{"instruction": "caf'), Buffer.from([0xe9, 0x22]), Buffer.from(', "output": "x"}\n'), Buffer.from(GOOD_LINES.slice(4).join("\n") + "\n")]));
  data("UTF-16 file", "refuse", "data-", () => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(GOOD_LINES.join("\n"), "utf16le")]));
  data("JSON array with a bad element", "refuse", "data-", () => `[${GOOD_LINES.slice(0, 4).join(",")}, {"instruction": 5}]`, "json");
  // One object on one line is JSON Lines with one record, as Hugging Face datasets reads a .json file.
  data("JSON file holding one record object (valid)", "accept", undefined, () => '{"instruction": "a", "output": "b"}', "json");
  data("JSON file holding null", "refuse", "data-", () => "null", "json");
  data("UTF-8 with a byte-order mark (valid)", "accept", undefined, () => "\ufeff" + GOOD_LINES.join("\n") + "\n");
  data("CRLF line ends (valid)", "accept", undefined, () => GOOD_LINES.join("\r\n") + "\r\n");
  // A prompt longer than --max-length leaves nothing to learn: refused by line, and at once.
  data("a record with a 5 MB input", "refuse", at3, () => lines(JSON.stringify({ instruction: "Summarise.", input: "word ".repeat(1_000_000), output: " Short." })), "jsonl", 20);
  data("a record with a 5 MB answer (valid: cut to --max-length)", "accept", undefined, () => lines(JSON.stringify({ instruction: "Write at length.", output: " word".repeat(1_000_000) })), "jsonl", 30);
  cases.push({ group: "datasets", name: "--data missing", expect: "refuse", names: "nope.jsonl", args: [...TRAIN, "--data", path.join(root, "nope.jsonl"), "--out", path.join(root, "o-missing")] });
  cases.push({ group: "datasets", name: "--data is a folder", expect: "refuse", names: root, args: [...TRAIN, "--data", root, "--out", path.join(root, "o-folder")] });
  return cases;
}

export function optionCases(root: string): Case[] {
  const cases: Case[] = [];
  let n = 0;
  const train = (flag: string, value: string, extra: string[] = []) =>
    cases.push({ group: "options", name: `train ${flag} ${value}${extra.length ? " " + extra.join(" ") : ""}`, expect: "refuse", names: flag, args: [...TRAIN, "--data", DEMO_DATA, "--out", path.join(root, `opt-out-${n++}`), ...extra, flag, value] });
  const bad: [string, string[]][] = [
    ["--epochs", ["abc", "-1", "0", "2.5"]], ["--max-steps", ["0", "x"]], ["--batch-size", ["0", "1e9", "-4"]], ["--micro-batch", ["0", "1.5"]],
    ["--lr", ["-1", "abc", "Infinity", "0"]], ["--prompts", ["0", "1e8", "-3"]], ["--rank", ["0", "1000000000", "2.5"]],
    ["--layers", ["99", "-1", "abc", "1,1,99"]], ["--max-length", ["0", "1000000000"]], ["--validation-share", ["1", "-0.1", "x"]],
    ["--seed", ["-1", "1e20", "1.5"]], ["--checkpoint-every", ["-1"]], ["--eval-every", ["abc"]], ["--warmup-share", ["2", "-1"]],
    ["--weight-decay", ["-1"]], ["--grad-clip", ["-1"]], ["--retain-weight", ["-1", "NaN"]], ["--method", ["foo"]], ["--preset", ["huge"]],
    ["--backend", ["quantum"]],
  ];
  for (const [flag, values] of bad) for (const v of values) train(flag, v);
  for (const [flag, v] of [["--lora-r", "0"], ["--lora-r", "1000000000"], ["--lora-alpha", "-1"], ["--lora-targets", "embed_tokens"]] as const) train(flag, v, ["--method", "lora"]);
  train("--prompts", "10", ["--method", "lora"]);
  train("--retain", path.join(root, "no-such-retain.jsonl"));

  const gen = (flag: string, value: string) =>
    cases.push({ group: "options", name: `generate ${flag} ${value}`, expect: "refuse", names: flag, args: ["generate", "--model", DEMO_MODEL, "--prompt", "Once", flag, value] });
  for (const [flag, values] of [
    ["--max-tokens", ["0", "1e9", "x"]], ["--temperature", ["-1", "hot"]], ["--top-p", ["0", "2"]], ["--top-k", ["-1", "1.5"]],
    ["--repetition-penalty", ["0", "-1"]], ["--seed", ["abc", "-1"]], ["--template", ["bogus"]],
  ] as [string, string[]][])
    for (const v of values) gen(flag, v);
  cases.push({ group: "options", name: "generate --prompt of 100 KB (past the context)", expect: "refuse", names: /context|tokens/, args: ["generate", "--model", DEMO_MODEL, "--prompt", "word ".repeat(20_000), "--max-tokens", "4"] });

  const score = (name: string, args: string[], names: Case["names"]) => cases.push({ group: "options", name: `score ${name}`, expect: "refuse", names, args: ["score", "--model", DEMO_MODEL, ...args] });
  score("--ids 99999 (past the vocabulary)", ["--ids", "1,99999"], "--ids");
  score("--ids -1", ["--ids", "1,-1"], "--ids");
  score("--ids abc", ["--ids", "abc"], "--ids");
  score("--ids with one id", ["--ids", "1"], "--ids");
  score("--ids and --text together", ["--ids", "1,2", "--text", "hi"], /--ids|--text/);
  score("nothing to score", [], /--ids|--text|--file/);
  score("--file missing", ["--file", path.join(root, "missing.txt")], "missing.txt");
  score("--file is a folder", ["--file", root], root);
  cases.push({ group: "options", name: "score --text of 100 KB (valid: scored in context-sized windows)", expect: "accept", args: ["score", "--model", DEMO_MODEL, "--json", "--text", "word ".repeat(20_000)] });
  cases.push({ group: "options", name: "attention without --prompt", expect: "refuse", names: "--prompt", args: ["attention", "--model", DEMO_MODEL] });
  cases.push({ group: "options", name: "tokenize without --text", expect: "refuse", names: "--text", args: ["tokenize", "--model", DEMO_MODEL] });
  cases.push({ group: "options", name: "chat --max-tokens 0", expect: "refuse", names: "--max-tokens", args: ["chat", "--model", DEMO_MODEL, "--max-tokens", "0"], stdin: "hi\n" });
  cases.push({ group: "options", name: "an unknown command", expect: "refuse", names: "frobnicate", args: ["frobnicate"] });
  cases.push({ group: "options", name: "an unknown option", expect: "refuse", names: "--colour", args: ["info", "--model", DEMO_MODEL, "--colour"] });
  return cases;
}

export function outputCases(root: string): Case[] {
  const cases: Case[] = [];
  const train = (name: string, out: string, names: Case["names"], o: Partial<Case> = {}) =>
    cases.push({ group: "output folders", name, expect: "refuse", names, args: [...TRAIN, "--data", DEMO_DATA, "--out", out], timeout: 20, ...o });
  const file = path.join(root, "out-is-a-file");
  train("--out is a file", file, file, { setup: () => writeText(file, "x") });
  train("--out under /proc", "/proc/excitor-run", "/proc/excitor-run");
  train("--out under a file", "/dev/null/run", "/dev/null");
  train("--out is empty", "", "--out");
  // Root ignores permissions: the read-only case runs as nobody, in a folder it can read but not write.
  const ro = path.join(root, "read-only");
  train("--out in a read-only folder (as an unprivileged user)", path.join(ro, "run"), path.join(ro, "run"), {
    unprivileged: true,
    setup: () => {
      fs.mkdirSync(ro, { recursive: true });
      fs.chmodSync(root, 0o755);
      fs.chmodSync(ro, 0o555);
    },
  });
  const full = path.join(root, "full-disk");
  if (canMountTmpfs(full))
    train("--out on a full disk (a 64 KB tmpfs)", path.join(full, "run"), /full-disk\/run.*(space|ENOSPC)|(space|ENOSPC).*full-disk\/run/, { timeout: 30 });
  return cases;
}

/** A tampered copy of a real checkpointed run, resumed with the command that made it. */
export function resumeCases(root: string, run: { dir: string; args: string[] }): Case[] {
  const cases: Case[] = [];
  let n = 0;
  const state = (d: string) => path.join(d, "checkpoint", "trainer_state.safetensors");
  const resume = (name: string, names: Case["names"], edit: (dir: string) => void) => {
    const dir = path.join(root, `resume-${n++}`);
    cases.push({ group: "resume", name, expect: "refuse", names, args: [...run.args, "--out", dir, "--resume"], setup: () => {
      fs.cpSync(run.dir, dir, { recursive: true });
      edit(dir);
    } });
  };
  for (const step of ["abc", "-5", "1000", "2.5", ""]) resume(`checkpoint step "${step}"`, /trainer_state|step/, (d) => editTensors(state(d), (_t, m) => (m.step = step)));
  resume('optimizer_step "x"', /trainer_state|step/, (d) => editTensors(state(d), (_t, m) => (m.optimizer_step = "x")));
  resume("an AdamW first moment missing", "adamw.m", (d) => editTensors(state(d), (t) => delete t[Object.keys(t).filter((k) => k.startsWith("adamw.m."))[0]]));
  resume("an AdamW second moment missing", "adamw.v", (d) => editTensors(state(d), (t) => delete t[Object.keys(t).filter((k) => k.startsWith("adamw.v."))[0]]));
  resume("every AdamW moment missing", /adamw|moment/, (d) => editTensors(state(d), (t) => Object.keys(t).filter((k) => k.startsWith("adamw.")).forEach((k) => delete t[k])));
  resume("a trained tensor missing", "trainer_state", (d) => editTensors(state(d), (t) => delete t[Object.keys(t).filter((k) => !k.startsWith("adamw."))[0]]));
  resume("a trained tensor of the wrong shape", "trainer_state", (d) =>
    editTensors(state(d), (t) => {
      const k = Object.keys(t).filter((x) => !x.startsWith("adamw.") && t[x].data.length > 1)[0];
      t[k] = { shape: [1], data: t[k].data.subarray(0, 1) };
    }));
  resume("a moment of the wrong shape", "adamw", (d) =>
    editTensors(state(d), (t) => {
      const k = Object.keys(t).filter((x) => x.startsWith("adamw.m.") && t[x].data.length > 1)[0];
      t[k] = { shape: [1], data: t[k].data.subarray(0, 1) };
    }));
  resume("NaN in a moment", "adamw", (d) => editTensors(state(d), (t) => (t[Object.keys(t).filter((k) => k.startsWith("adamw.v."))[0]].data[0] = NaN)));
  resume("the checkpoint truncated", "trainer_state", (d) => fs.truncateSync(state(d), fs.statSync(state(d)).size - 64));
  resume("the checkpoint's metadata gone", "trainer_state", (d) => editTensors(state(d), (_t, m) => Object.keys(m).forEach((k) => delete m[k])));
  resume("other training options than the checkpoint's", "checkpoint", (d) => editTensors(state(d), (_t, m) => (m.fingerprint = "something else")));
  return cases;
}

function canMountTmpfs(dir: string): boolean {
  try {
    fs.mkdirSync(dir, { recursive: true });
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export function unmount(dir: string): void {
  try {
    execFileSync("umount", [dir], { stdio: "ignore" });
  } catch {
    /* not mounted */
  }
}
