/**
 * The terminal chat's slash commands (cli/chat-commands.ts): parsed apart from the terminal, then
 * through `excitor chat` itself: piped lines (its line protocol) reach the model exactly as
 * `excitor generate` with the same settings does, and in a pseudo-terminal the prompt shows the input.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { chatCommands, chatPrompt, helpText, parseChatLine, type ChatSettings } from "../cli/chat-commands";
import { BIN, excitor } from "./helpers/cli";
import { FIXTURES } from "./fixtures";
import { tempDir, writeTinyModel } from "./helpers/tiny-model";

const S: ChatSettings = { temperature: 0.7, maxTokens: 512 };

test("/input sets and clears the Alpaca input, /temp and /max change sampling, and bad values are refused", () => {
  assert.deepEqual(parseChatLine("/input One day, a brave cat named Tom  ", S, false), { kind: "settings", settings: { ...S, input: "One day, a brave cat named Tom" }, note: "(input set: One day, a brave cat named Tom; a new conversation starts; /input alone clears it)", fresh: true });
  assert.deepEqual(parseChatLine("/input", { ...S, input: "x" }, false), { kind: "settings", settings: { ...S, input: undefined }, note: "(input cleared; a new conversation starts)", fresh: true });
  assert.equal((parseChatLine("/temp 0", S, false) as { settings: ChatSettings }).settings.temperature, 0);
  assert.equal((parseChatLine("/max 20", S, false) as { settings: ChatSettings }).settings.maxTokens, 20);
  assert.match((parseChatLine("/temp hot", S, false) as { message: string }).message, /^\/temp hot: is not a number/);
  assert.match((parseChatLine("/temp 9", S, false) as { message: string }).message, /^\/temp 9: must be/);
  assert.match((parseChatLine("/max 0", S, false) as { message: string }).message, /^\/max 0: must be/);
  assert.match((parseChatLine("/max", S, false) as { message: string }).message, /^\/max needs a value/);
  assert.deepEqual(parseChatLine("What is the name of the cat?", S, false), { kind: "message", text: "What is the name of the cat?" });
  assert.deepEqual(parseChatLine("   ", S, false), { kind: "empty" });
  assert.deepEqual(parseChatLine("/exit", S, false), { kind: "exit" });
  assert.deepEqual(parseChatLine("/reset", S, false), { kind: "reset" });
  // A mistyped command is an error that lists the commands, never a message to the model.
  const typo = parseChatLine("/inptu One day", S, false);
  assert.equal(typo.kind, "error");
  assert.match((typo as { message: string }).message, /^\/inptu is not a chat command; \/help lists them \(\/input \/temp \/max \/reset \/help \/exit\)$/);
  assert.equal(parseChatLine("/image cat.png", S, false).kind, "error", "no /image without a multimodal adapter");
  assert.deepEqual(parseChatLine("/image cat.png", S, true), { kind: "image", file: "cat.png" });
});

test("/help lists every command, and the prompt shows the input while it is set", () => {
  for (const images of [false, true]) {
    const help = helpText(images);
    for (const c of chatCommands(images)) assert.ok(help.includes(c.usage), `${c.usage} in /help`);
    assert.equal(help.includes("/image PATH"), images);
  }
  assert.equal(chatPrompt(S), "> ");
  assert.equal(chatPrompt({ ...S, input: "One day, a brave cat named Tom went to the park." }), "[input: One day, a brave cat named Tom …] > ");
});

test("piped to excitor chat, /input, /temp and /max reach the model as generate's --input, --temperature and --max-tokens do", () => {
  const model = path.join(FIXTURES, "stories260k/hf"); // a real model: what it reads changes what it says
  const story = "One day, a cat named Tom found a red ball.";
  const lines = ["/help", "/temp 0", "/max 12", `/input ${story}`, "Who is it?", "/input", "Who is it?", "/nope", "/exit", "never read"];
  const r = excitor(["chat", "--model", model, "--repetition-penalty", "1"], lines.join("\n") + "\n");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\/input TEXT {2}the context the next questions are about/);
  assert.match(r.stdout, /\(temperature 0: greedy\)\n\(answers of at most 12 tokens\)\n\(input set: One day, a cat/);
  assert.match(r.stderr, /^excitor: error: \/nope is not a chat command/m);
  const gen = (...extra: string[]) => {
    const g = excitor(["generate", "--model", model, "--template", "alpaca", "--prompt", "Who is it?", "--temperature", "0", "--max-tokens", "12", ...extra]);
    assert.equal(g.code, 0, g.stderr);
    return g.stdout; // the answer and one newline, as the chat prints each answer
  };
  const withInput = gen("--input", story);
  const without = gen();
  assert.notEqual(withInput, without, "the input changes the greedy answer");
  assert.ok(r.stdout.includes(`(input set: ${story}; a new conversation starts; /input alone clears it)\n${withInput}(input cleared; a new conversation starts)\n${without}`), r.stdout);
  // --input starts the chat with an input, as /input does.
  const started = excitor(["chat", "--model", model, "--repetition-penalty", "1", "--temperature", "0", "--max-tokens", "12", "--input", story], "Who is it?\n");
  assert.equal(started.stdout, withInput);
  const bad = excitor(["generate", "--model", model, "--prompt", "hi", "--input", story]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--input is the Alpaca prompt's Input field; give --template alpaca/);
});

test("in a terminal (a pseudo-terminal), the chat's prompt shows the input and /input alone clears it", () => {
  const model = writeTinyModel(path.join(tempDir(), "tiny"));
  const cmd = [process.execPath, BIN, "chat", "--model", model, "--max-tokens", "2", "--input", "A cat named Tom"].map((a) => `'${a}'`).join(" ");
  const r = spawnSync("script", ["-qfec", cmd, "/dev/null"], { input: "/input\n/exit\n", encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const screen = r.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
  assert.match(screen, /\/help lists the commands, \/exit quits/);
  assert.match(screen, /\[input: A cat named Tom\] > /);
  assert.match(screen, /\(input cleared; a new conversation starts\)\r?\n> /);
});
