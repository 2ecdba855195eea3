/**
 * The extension's settings (`excitor.*` in package.json), read into one typed object. Values a
 * user typed wrong in settings.json fall back to their defaults and are reported, so a typo costs
 * a warning, not a failed run. No vscode import: the host passes a getter.
 */
import { BACKEND_CHOICES, type BackendChoice } from "../engine/backend-choice";
import { TRAIN_RANGES as R } from "../engine/option-ranges";

export interface TrainDefaults {
  /** 0 = the spec's default for the model's size. */
  prompts: number;
  rank: number;
  epochs: number;
  /** 0 = 9e-3 × batch / 256. */
  learningRate: number;
  batchSize: number;
  maxLength: number;
  validationShare: number;
  seed: number;
}

export interface ExcitorSettings {
  /** Base model folder; "" = the built-in demo model. */
  modelFolder: string;
  backend: BackendChoice;
  /** Intra-op threads for native backends; 0 = the backend decides. */
  threads: number;
  /** Where runs are written; "" = .excitor/runs in the first workspace folder. */
  runsFolder: string;
  train: TrainDefaults;
  chat: { temperature: number; topP: number; maxTokens: number };
}

export const DEFAULT_SETTINGS: ExcitorSettings = {
  modelFolder: "",
  backend: "auto",
  threads: 0,
  runsFolder: "",
  train: { prompts: 0, rank: 0, epochs: 3, learningRate: 0, batchSize: 16, maxLength: 512, validationShare: 0.05, seed: 0 },
  chat: { temperature: 0.7, topP: 0.9, maxTokens: 256 },
};

type Rule = { min: number; max: number; integer?: boolean };
/** The CLI's ranges (engine/option-ranges.ts); 0 also stands for "the default" where the setting says so. */
const TRAIN_RULES: Record<keyof TrainDefaults, Rule> = {
  prompts: { min: 0, max: R.numPrompts.max, integer: true },
  rank: { min: 0, max: R.rank.max, integer: true },
  epochs: R.epochs,
  learningRate: { min: 0, max: R.learningRate.max },
  batchSize: R.batchSize,
  maxLength: R.maxLength,
  validationShare: R.validationShare,
  seed: R.seed,
};
const CHAT_RULES: Record<keyof ExcitorSettings["chat"], Rule> = {
  temperature: { min: 0, max: 5 },
  topP: { min: 0.01, max: 1 },
  maxTokens: { min: 1, max: 8192, integer: true },
};

export interface SettingsRead {
  settings: ExcitorSettings;
  /** One line per value that was ignored, naming the setting. */
  problems: string[];
}

/** `get("train.epochs")` returns the user's value for `excitor.train.epochs`, or undefined. */
export function readSettings(get: (key: string) => unknown): SettingsRead {
  const problems: string[] = [];
  const D = DEFAULT_SETTINGS;
  const str = (key: string, dflt: string): string => {
    const v = get(key);
    if (v === undefined || v === null) return dflt;
    if (typeof v === "string") return v.trim();
    problems.push(`excitor.${key}: expected a string, got ${JSON.stringify(v)}; using ${JSON.stringify(dflt)}`);
    return dflt;
  };
  const num = (key: string, dflt: number, rule: Rule): number => {
    const v = get(key);
    if (v === undefined || v === null) return dflt;
    const ok = typeof v === "number" && Number.isFinite(v) && v >= rule.min && v <= rule.max && (!rule.integer || Number.isInteger(v));
    if (ok) return v;
    problems.push(`excitor.${key}: expected ${rule.integer ? "a whole number" : "a number"} from ${rule.min} to ${rule.max}, got ${JSON.stringify(v)}; using ${dflt}`);
    return dflt;
  };
  const backendRaw = str("backend", D.backend);
  const backend = (BACKEND_CHOICES as string[]).includes(backendRaw) ? (backendRaw as BackendChoice) : D.backend;
  if (backend !== backendRaw) problems.push(`excitor.backend: "${backendRaw}" is not one of ${BACKEND_CHOICES.join(", ")}; using "${D.backend}"`);
  const train = {} as TrainDefaults;
  for (const k of Object.keys(TRAIN_RULES) as (keyof TrainDefaults)[]) train[k] = num(`train.${k}`, D.train[k], TRAIN_RULES[k]);
  const chat = {} as ExcitorSettings["chat"];
  for (const k of Object.keys(CHAT_RULES) as (keyof ExcitorSettings["chat"])[]) chat[k] = num(`chat.${k}`, D.chat[k], CHAT_RULES[k]);
  return {
    settings: {
      modelFolder: str("modelFolder", D.modelFolder),
      backend,
      threads: num("threads", D.threads, { min: 0, max: 256, integer: true }),
      runsFolder: str("runsFolder", D.runsFolder),
      train,
      chat,
    },
    problems,
  };
}
