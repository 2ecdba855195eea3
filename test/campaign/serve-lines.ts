/**
 * Malformed request lines sent to one `excitor serve` process while a real generation runs. A
 * line is handled well when it gets exactly one `error` event (with its id when it had one) and
 * the process lives on to finish the generation and answer a last valid request.
 */
import { spawn } from "node:child_process";
import * as os from "node:os";
import { CLI, type Result, type Verdict } from "./outcome";
import { DEMO_MODEL } from "./files";

const user = (content: unknown) => ({ role: "user", content });
const GEN = { op: "generate", messages: [user("What is the name of the cat?")], template: "alpaca", useAdapter: false, temperature: 0, topP: 1, maxTokens: 32 };
const ATT = { op: "attention", prompt: "What is the name of the cat?", response: "Tom.", template: "alpaca" };

/** [label, line, id the error must carry (undefined: none), whether it must be answered instead]. */
type Line = [string, string, number | undefined, "refuse" | "accept"];

export function malformedLines(): Line[] {
  const out: Line[] = [];
  let id = 1000;
  const req = (label: string, obj: Record<string, unknown>, expect: Line[3] = "refuse") => {
    const i = id++;
    out.push([label, JSON.stringify({ id: i, ...obj }), i, expect]);
  };
  for (const [label, text] of [["null", "null"], ["a number", "7"], ["a string", '"generate"'], ["an array", "[]"], ["true", "true"], ["not JSON", "{op: generate}"], ["cut-off JSON", '{"id": 1, "op": "gen'], ["an empty object", "{}"], ["deeply nested", "[".repeat(5000) + "]".repeat(5000)]] as const)
    out.push([`a line that is ${label}`, text, undefined, "refuse"]);
  out.push(["id a string", JSON.stringify({ ...GEN, id: "seven" }), undefined, "refuse"]);
  out.push(["id negative", JSON.stringify({ ...GEN, id: -3 }), undefined, "refuse"]);
  out.push(["id fractional", JSON.stringify({ ...GEN, id: 1.5 }), undefined, "refuse"]);
  req("op missing", { messages: GEN.messages });
  req("op unknown", { op: "explode" });
  req("op a number", { op: 3 });
  // Only the conversation is required; the protocol gives every other field a documented default.
  for (const key of ["messages", "template", "maxTokens", "temperature", "topP", "useAdapter"]) {
    const { [key as keyof typeof GEN]: _drop, ...rest } = GEN;
    void _drop;
    req(`generate without ${key}${key === "messages" ? "" : " (valid: its default)"}`, { ...rest, maxTokens: key === "maxTokens" ? undefined : 8 }, key === "messages" ? "refuse" : "accept");
  }
  const badValues: [string, unknown[]][] = [
    ["messages", [[], null, "hi", [null], [user(42)], [{ role: "wizard", content: "x" }], [{ content: "x" }], [user("a"), { role: "assistant", content: "b" }], [{ role: "user", content: "x", extra: { deep: [1] } }, null]]],
    ["template", ["bogus", 1, null, ""]],
    ["temperature", ["hot", -1, null, 1e400, "0.7"]],
    ["topP", [0, 1.5, "0.9", -0.1]],
    ["maxTokens", [0, -5, 2.5, 1e12, "32"]],
    ["useAdapter", ["no", 0, null]],
    ["seed", [-1, "x", 0.5]],
    ["input", [42, ["a"], { a: 1 }]],
  ];
  for (const [key, values] of badValues) for (const v of values) req(`generate ${key}: ${JSON.stringify(v)?.slice(0, 40)}`, { ...GEN, [key]: v });
  req("generate with a 5 MB message", { ...GEN, messages: [user("word ".repeat(1_000_000))] });
  req("attention without prompt", { op: "attention", template: "alpaca" });
  for (const [key, values] of [["prompt", [null, 5, ""]], ["response", [5, null]], ["template", ["bogus", null]], ["input", [7]]] as [string, unknown[]][])
    for (const v of values) req(`attention ${key}: ${JSON.stringify(v)}`, { ...ATT, [key]: v });
  req("attention with a 5 MB prompt", { ...ATT, prompt: "word ".repeat(1_000_000) });
  req("stop without target", { op: "stop" });
  req("stop target a string", { op: "stop", target: "1" });
  return out;
}

interface ServeEvent {
  type: string;
  id?: number;
  [k: string]: unknown;
}

export async function serveCampaign(): Promise<{ results: Result[]; generationCompleted: boolean; aliveAtEnd: boolean }> {
  const lines = malformedLines();
  const child = spawn(process.execPath, [CLI, "serve", "--model", DEMO_MODEL], { cwd: os.tmpdir(), stdio: ["pipe", "pipe", "pipe"] });
  const events: ServeEvent[] = [];
  let nonJson = 0;
  let buf = "";
  let exited = false;
  child.on("exit", () => (exited = true));
  child.stderr.resume();
  const waiters: (() => void)[] = [];
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        events.push(JSON.parse(line));
      } catch {
        nonJson++;
      }
      waiters.splice(0).forEach((w) => w());
    }
  });
  const until = (pred: () => boolean, seconds: number) =>
    new Promise<boolean>((resolve) => {
      const end = Date.now() + seconds * 1000;
      const check = () => (pred() ? resolve(true) : exited || Date.now() > end ? resolve(false) : (waiters.push(check), setTimeout(check, 200)));
      check();
    });
  const write = (line: string) => !exited && child.stdin.write(line + "\n");
  child.stdin.on("error", () => {});

  await until(() => events.some((e) => e.type === "ready"), 60);
  write(JSON.stringify({ ...GEN, id: 1, maxTokens: 48 }));
  for (const [, line] of lines) write(line);
  write(JSON.stringify({ ...GEN, id: 2, maxTokens: 8 }));
  const generationCompleted = await until(() => events.some((e) => e.id === 1 && e.type === "done"), 120);
  const aliveAtEnd = (await until(() => events.some((e) => e.id === 2 && e.type === "done"), 120)) && !exited;
  child.stdin.end();
  if (!exited) child.kill();

  const idless = events.filter((e) => e.type === "error" && e.id === undefined).length;
  const expectedIdless = lines.filter(([, , id]) => id === undefined).length;
  const results: Result[] = lines.map(([name, , id, expect]) => {
    let verdict: Verdict;
    if (expect === "accept") {
      const mine = events.filter((e) => e.id === id && e.type !== "text");
      verdict = mine.length === 1 && mine[0].type !== "error" ? "accepted" : mine.some((e) => e.type === "error") ? "wrongly refused" : exited ? "crash" : "hang";
    } else if (id === undefined) verdict = idless >= expectedIdless ? "clear error" : exited ? "crash" : "silently accepted";
    else {
      const mine = events.filter((e) => e.id === id && e.type !== "text");
      const errors = mine.filter((e) => e.type === "error" && typeof e.message === "string" && !/TypeError|Cannot read|undefined is not/.test(e.message as string));
      verdict = errors.length === 1 && mine.length === 1 ? "clear error" : mine.some((e) => e.type === "error") ? "unclear error" : exited ? "crash" : mine.length ? "silently accepted" : "hang";
    }
    return { group: "serve requests", name, verdict, code: null, seconds: 0, stderr: JSON.stringify(events.find((e) => id !== undefined && e.id === id) ?? null).slice(0, 200) };
  });
  if (nonJson > 0) results.push({ group: "serve requests", name: `${nonJson} lines on stdout that are not JSON`, verdict: "unclear error", code: null, seconds: 0, stderr: "" });
  return { results, generationCompleted, aliveAtEnd };
}
