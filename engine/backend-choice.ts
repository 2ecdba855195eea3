/** The backends a caller may ask for; a module of its own so that choosing one loads no tensor library. */
export type BackendChoice = "auto" | "ort" | "ort-cpu" | "ort-cuda" | "ort-dml" | "ort-coreml" | "tfjs" | "tfjs-wasm" | "tfjs-node" | "tfjs-node-gpu" | "tfjs-cpu";
export const BACKEND_CHOICES: BackendChoice[] = ["auto", "ort", "ort-cpu", "ort-cuda", "ort-dml", "ort-coreml", "tfjs", "tfjs-wasm", "tfjs-node", "tfjs-node-gpu", "tfjs-cpu"];
