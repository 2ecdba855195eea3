/**
 * Starts the engine outside the extension host: the `excitor` CLI (training, `serve` for chat and
 * attention) or the demo program, run by the host's own Node (`process.execPath`; under desktop
 * VS Code that is Electron, which ELECTRON_RUN_AS_NODE turns into plain Node). The editor's
 * process never holds a model, so a long step or a crash in the engine cannot freeze it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";

export interface Launcher {
  /** The `excitor` command line with these arguments. */
  cli(args: string[]): ChildProcess;
  /** The built-in demo program (demo/run.js) with these arguments. */
  demo(args: string[]): ChildProcess;
}

export interface LaunchOptions {
  /** Intra-op threads of the engine (onnxruntime, native tfjs); 0 leaves its own choice (every core). */
  threads: number;
}

/** `root` is the extension's (the package's) folder; `options` is read at each start, so setting changes apply to the next process. */
export function nodeLauncher(root: string, options: () => LaunchOptions): Launcher {
  const run = (script: string, args: string[]) => {
    const { threads } = options();
    // The engine sets ORT_DISABLE_TELEMETRY itself before onnxruntime loads; set here too so no
    // future entry point of the engine can forget it (see engine/backends/onnxruntime.ts).
    const env: NodeJS.ProcessEnv = { ...process.env, ELECTRON_RUN_AS_NODE: "1", ORT_DISABLE_TELEMETRY: "1" };
    if (threads > 0) {
      // EXCITOR_THREADS sizes onnxruntime's pool; TensorFlow's native library (tfjs-node, tfjs-node-gpu)
      // reads the other two; the wasm backend runs one thread.
      env.EXCITOR_THREADS = String(threads);
      env.TF_NUM_INTRAOP_THREADS = String(threads);
      env.OMP_NUM_THREADS = String(threads);
    }
    return spawn(process.execPath, [script, ...args], { cwd: root, env, stdio: ["pipe", "pipe", "pipe"] });
  };
  return {
    cli: (args) => run(path.join(root, "dist", "bundle", "excitor.js"), args),
    demo: (args) => run(path.join(root, "dist", "bundle", "demo.js"), args),
  };
}

/** Calls `onLine` for each complete line of `stream` (the last one too, at end). */
export function eachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buf = "";
  stream.setEncoding?.("utf8");
  stream.on("data", (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() !== "") onLine(line);
    }
  });
  stream.on("end", () => {
    if (buf.trim() !== "") onLine(buf);
    buf = "";
  });
}
