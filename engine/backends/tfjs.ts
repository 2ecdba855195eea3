/**
 * The one place that picks a tfjs backend. Order: @tensorflow/tfjs-node-gpu (CUDA) when
 * installed and it loads, then @tensorflow/tfjs-node, then the wasm backend, which is the
 * only pure-JS CPU backend worth using (the plain cpu backend is ~150x slower than PyTorch).
 * Everything in engine/tfjs uses the `tf` exported here, so native packages that bring
 * their own tfjs copy still work.
 */
import * as tfcore from "@tensorflow/tfjs";
import { ExcitorInputError } from "../errors";

export type TfjsBackendName = "tensorflow-gpu" | "tensorflow" | "wasm" | "cpu";
export type TfjsPreference = "auto" | TfjsBackendName;

// Live binding: engine/tfjs reads `tf` after initTfjs() may have swapped in a native package.
export let tf: typeof tfcore = tfcore;

/** The wasm backend's heap is capped at 4 GiB (measured); leave room for activations. */
export const WASM_HEAP_BYTES = 4 * 2 ** 30;

export interface TfjsBackendInfo {
  name: TfjsBackendName;
  /** Why this backend and not a faster one; shown by `excitor info`. */
  note: string;
  /** Memory the backend can hold, where it is capped. */
  memoryLimitBytes?: number;
}

let current: TfjsBackendInfo | undefined;

export async function initTfjs(pref: TfjsPreference = "auto", threads?: number): Promise<TfjsBackendInfo> {
  if (current && (pref === "auto" || pref === current.name)) return current;
  const notes: string[] = [];
  const tryNative = async (pkg: string, name: TfjsBackendName): Promise<boolean> => {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require(pkg) as typeof tfcore;
      tf = mod;
      await tf.setBackend("tensorflow");
      await tf.ready();
      current = { name, note: `${pkg} loaded` };
      return true;
    } catch (e) {
      notes.push(`${pkg} not usable (${firstLine(e)})`);
      tf = tfcore;
      return false;
    }
  };
  if ((pref === "auto" || pref === "tensorflow-gpu") && (await tryNative("@tensorflow/tfjs-node-gpu", "tensorflow-gpu"))) return current!;
  if ((pref === "auto" || pref === "tensorflow") && (await tryNative("@tensorflow/tfjs-node", "tensorflow"))) return current!;
  if (pref === "tensorflow-gpu" || pref === "tensorflow")
    throw new ExcitorInputError(`--backend: ${pref === "tensorflow" ? "tfjs-node" : "tfjs-node-gpu"} was requested but ${notes.join("; ")}`);
  // PROD silences tfjs's console advice (e.g. the cpu backend's "install tfjs-node" banner):
  // the CLI's stderr carries our own one-line messages only; `excitor info` says which backend runs.
  tf.env().set("PROD", true);
  if (pref === "cpu") {
    await tf.setBackend("cpu");
    await tf.ready();
    current = { name: "cpu", note: "plain JS cpu backend (slow; for debugging)" };
    return current;
  }
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  if (threads) wasm.setThreadsCount(threads); // ignored in Node: tfjs disables wasm threads there
  await tf.setBackend("wasm");
  await tf.ready();
  current = {
    name: "wasm",
    note: notes.length ? `wasm (single-threaded SIMD); ${notes.join("; ")}` : "wasm (single-threaded SIMD)",
    memoryLimitBytes: WASM_HEAP_BYTES,
  };
  return current;
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0].slice(0, 160);
}
