/**
 * How the campaign judges one input: it runs the `excitor` command on it and sorts the result
 * into the classes a user feels. For input that must be refused, only a one-line
 * `excitor: error: …` (exit 2) that names what is wrong counts; for unusual but valid input,
 * only success counts.
 */
import { spawn } from "node:child_process";
import * as os from "node:os";
import * as path from "node:path";

export const REPO = path.resolve(__dirname, "../../..");
export const CLI = path.join(REPO, "bin", "excitor.js");

export type Verdict =
  | "clear error"
  | "accepted"
  | "internal error"
  | "stack trace"
  | "hang"
  | "crash"
  | "unclear error"
  | "silently accepted"
  | "wrongly refused";

export const GOOD: ReadonlySet<Verdict> = new Set(["clear error", "accepted"]);

export interface Case {
  group: string;
  name: string;
  /** `excitor` arguments. */
  args: string[];
  /** refuse: a clear one-line error is the right answer; accept: success is. */
  expect: "refuse" | "accept";
  /** The message must contain this (a file, field or option name). */
  names?: string | RegExp;
  stdin?: string;
  /** Seconds before the run counts as a hang (default 30). */
  timeout?: number;
  /** Run as an unprivileged user (root ignores file permissions). */
  unprivileged?: boolean;
  /** Prepares the input just before the run (files are made lazily to keep the disk small). */
  setup?: () => void;
}

export interface Result {
  group: string;
  name: string;
  verdict: Verdict;
  code: number | null;
  seconds: number;
  stderr: string;
}

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  seconds: number;
}

export function runCli(args: string[], o: { stdin?: string; timeout?: number; unprivileged?: boolean } = {}): Promise<Ran> {
  const argv = [CLI, ...args];
  const [cmd, cmdArgs] = o.unprivileged ? ["setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, ...argv]] : [process.execPath, argv];
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd as string, cmdArgs as string[], { cwd: os.tmpdir(), stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, EXCITOR_DEBUG: "" } });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout.length < 1e6 ? (stdout += d) : undefined));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr.length < 1e6 ? (stderr += d) : undefined));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, (o.timeout ?? 30) * 1000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, seconds: (Date.now() - t0) / 1000 });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(o.stdin ?? "");
  });
}

export function judge(c: Case, r: Ran): Verdict {
  if (r.timedOut) return "hang";
  if (/\n\s+at .+[:(]\d+/.test(r.stderr)) return "stack trace";
  if (r.signal || (r.code !== 0 && r.code !== 1 && r.code !== 2 && r.code !== 130)) return "crash";
  if (r.code === 1 || /internal error/.test(r.stderr)) return "internal error";
  if (c.expect === "accept") return r.code === 0 ? "accepted" : "wrongly refused";
  if (r.code === 0) return "silently accepted";
  const lines = r.stderr.trim().split("\n").filter((l) => l.trim() !== "" && !/^\(node:\d+\) /.test(l) && !/--trace-warnings/.test(l));
  const one = lines.length === 1 && lines[0].startsWith("excitor: error: ");
  return one && (!c.names || (typeof c.names === "string" ? lines[0].includes(c.names) : c.names.test(lines[0]))) ? "clear error" : "unclear error";
}

export async function runCase(c: Case): Promise<Result> {
  c.setup?.();
  const r = await runCli(c.args, c);
  return { group: c.group, name: c.name, verdict: judge(c, r), code: r.code, seconds: r.seconds, stderr: r.stderr.trim().split("\n").slice(0, 3).join(" | ").slice(0, 300) };
}
