/**
 * Nothing leaves the machine: onnxruntime-node's native library queues usage events with a device
 * id in ~/.cache/Microsoft/DeveloperTools/.onnxruntime/onnxruntime.db (for upload to Microsoft)
 * and leaves /tmp/mat-debug-<pid>.log unless ORT_DISABLE_TELEMETRY is set before it loads. Every
 * way the engine runs is checked here with a fresh HOME and no such variable in its environment
 * (or one that asks for telemetry): the CLI, `serve` as the extension starts it (the bundle), and
 * a program that uses the engine directly as the bench, the demo and the tests do.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const REPO = path.resolve(__dirname, "../..");
const MODEL = path.join(REPO, "demo", "model");

interface Ran {
  pid: number;
  code: number | null;
  stdout: string;
  home: string;
}

/** Runs `node args…` with a fresh HOME and the telemetry variable as given (undefined: absent). */
function runNode(args: string[], telemetryVar: string | undefined, stdin?: string): Promise<Ran> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "excitor-privacy-home-"));
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, ORT_DISABLE_TELEMETRY: telemetryVar };
  if (telemetryVar === undefined) delete env.ORT_DISABLE_TELEMETRY;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO, env, stdio: ["pipe", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ pid: child.pid!, code, stdout, home }));
    child.stdin.end(stdin ?? "");
  });
}

/** What onnxruntime's telemetry would have left behind for this process. */
function traces(r: Ran): string[] {
  const found: string[] = [];
  const cache = path.join(r.home, ".cache", "Microsoft");
  if (fs.existsSync(cache)) found.push(cache);
  const log = path.join("/tmp", `mat-debug-${r.pid}.log`);
  if (fs.existsSync(log)) {
    found.push(log);
    fs.rmSync(log);
  }
  fs.rmSync(r.home, { recursive: true, force: true });
  return found;
}

test("the CLI runs a model on onnxruntime and leaves no telemetry database or debug log", async () => {
  for (const asked of [undefined, "0"]) {
    const r = await runNode([path.join(REPO, "bin", "excitor.js"), "score", "--model", MODEL, "--backend", "ort", "--text", "Once upon a time", "--json"], asked);
    assert.equal(r.code, 0, "the model ran");
    assert.ok(Array.isArray(JSON.parse(r.stdout).logprobs));
    assert.deepEqual(traces(r), [], `ORT_DISABLE_TELEMETRY=${asked ?? "(unset)"}`);
  }
});

test("serve, as the extension starts it from the bundle, leaves no telemetry traces", async () => {
  const req = { id: 1, op: "generate", messages: [{ role: "user", content: "Hi" }], template: "alpaca", useAdapter: false, temperature: 0, topP: 1, maxTokens: 4 };
  const r = await runNode([path.join(REPO, "dist", "bundle", "excitor.js"), "serve", "--model", MODEL, "--backend", "ort"], undefined, JSON.stringify(req) + "\n");
  const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { type: string; backend?: string });
  assert.equal(events[0].type, "ready");
  assert.match(events[0].backend ?? "", /onnxruntime/);
  assert.ok(events.some((e) => e.type === "done"), "a generation ran");
  assert.deepEqual(traces(r), []);
});

test("a program using the engine directly (bench, demo, tests) leaves no telemetry traces", async () => {
  const script = `
    const { openModel } = require(${JSON.stringify(path.join(REPO, "dist", "engine", "load.js"))});
    openModel(${JSON.stringify(MODEL)}, { backend: "ort" }).then(async (rt) => {
      const out = await rt.tokenLogprobs([1, 2, 3, 4], false);
      process.stdout.write(rt.backend + " " + out.length + "\\n");
      rt.dispose();
    });`;
  const r = await runNode(["-e", script], undefined);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^onnxruntime/);
  assert.deepEqual(traces(r), []);
});
