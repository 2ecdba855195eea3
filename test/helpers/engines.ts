/** The engines every numerical fact is checked on: the default (onnxruntime) and the reference (tfjs). */
import type { BackendChoice } from "../../engine/backend-choice";

export const ENGINES: BackendChoice[] = ["ort", "tfjs"];
