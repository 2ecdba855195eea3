/**
 * The messages between the extension host and its webviews, both ways, and the check every
 * message from a webview passes before the host acts on it. A webview is a browser page: what it
 * posts is untrusted input, so a malformed message is logged and dropped, never thrown on.
 * The webview side imports only the types from here.
 */
import type { AttentionReport } from "../engine/analysis/attention";
import type { ImageAttention } from "../engine/analysis/image-attention-types";
import type { TrainEvent } from "../engine/train/events";
import { MAX_IMAGE_BASE64_CHARS } from "./image-rules";
import type { RunStatus } from "./run-manager";

// ---------------------------------------------------------------- chat view

export type TemplateChoice = "auto" | "chat" | "alpaca";

export interface ChatParams {
  temperature: number;
  topP: number;
  maxTokens: number;
  template: TemplateChoice;
}

export type ChatToHost =
  | { type: "ready" }
  | { type: "send"; text: string; input: string; compare: boolean; params: ChatParams }
  | { type: "stop" }
  | { type: "clear" }
  /** Brings back the conversation the last Clear removed. */
  | { type: "undoClear" }
  | { type: "copy"; index: number }
  | { type: "chooseModel" }
  | { type: "chooseAdapter"; adapter: string }
  | { type: "showAttention"; index: number }
  /** A pasted or dropped picture: its file name and its bytes in base64 (a webview has no path to give). */
  | { type: "attachImage"; name: string; data: string }
  /** A file dragged from the Explorer or an editor tab: its URI. */
  | { type: "attachImageUri"; uri: string }
  /** The attach button: the host asks for a file. */
  | { type: "chooseImage" }
  /** The × on the image waiting to be sent. */
  | { type: "removeImage" };

/** An image in the chat: the host's copy (what the engine reads), the name it had, and what the webview loads. */
export interface ChatImage {
  path: string;
  name: string;
  /** The webview's URI for `path`, filled in by the host for each state it sends. */
  src?: string;
}

export interface ChatTurn {
  role: "user" | "assistant";
  text: string;
  /** Alpaca context sent with a user message. */
  input?: string;
  /** For questions: the image attached with it; it stays the conversation's image until another one is attached. */
  image?: ChatImage;
  /** For answers: "tuned" (with the adapter), "base" (compare with base), or "model" (no adapter loaded). */
  source?: "tuned" | "base" | "model";
  /** For answers: who answered, e.g. "train-quick · 2 Dec 14:03 on built-in demo model" (kept as it was when asked). */
  label?: string;
  /** For answers: how generation ended, once it has. */
  finish?: string;
  streaming?: boolean;
}

/** An entry of the chat's adapter list. */
export interface AdapterOption {
  path: string;
  /** "run name · date", told apart from runs of the same name. */
  name: string;
  /** What the list shows: the name and the run's status. */
  label: string;
  /** Shown on hover: the folder, and why the entry cannot be chosen when it cannot. */
  title: string;
  /** Why the adapter cannot be used with the chosen model; absent when it can. */
  disabled?: string;
}

export interface ChatState {
  model: string;
  modelLabel: string;
  adapter: string;
  adapters: AdapterOption[];
  turns: ChatTurn[];
  busy: boolean;
  status: string;
  params: ChatParams;
  /** A Clear can be undone (until the next question). */
  canUndo: boolean;
  /** The adapter is multimodal: the chat offers to attach an image. */
  takesImages: boolean;
  /** What the adapter's encoder sees ("224 × 224 pixels, 16 × 16 patches"), once the engine has said; else "". */
  imageNote: string;
  /** The image attached for the next question, not yet sent. */
  pendingImage?: ChatImage;
}

export type ChatToWebview =
  | { type: "state"; state: ChatState }
  | { type: "delta"; index: number; text: string };

// ---------------------------------------------------------------- training panel

export type TrainingToHost = { type: "ready" } | { type: "stop" } | { type: "resume" } | { type: "openFolder" };

export interface TrainingSnapshot {
  runId: string;
  name: string;
  status: RunStatus;
  error?: string;
  /** How the preset chose the run's numbers (absent for custom runs and older runs). */
  recipe?: string;
  /** Resume would continue it (a training run with a checkpoint): the panel offers Resume only then. */
  canResume: boolean;
  events: TrainEvent[];
}

export type TrainingToWebview =
  | { type: "snapshot"; run: TrainingSnapshot }
  | { type: "event"; runId: string; event: TrainEvent }
  | { type: "status"; runId: string; status: RunStatus; error?: string; canResume: boolean };

// ---------------------------------------------------------------- attention panel

export type AttentionToHost =
  | { type: "ready" }
  | { type: "analyze"; prompt: string; input: string; response: string }
  /** Analyse without the chat's image. */
  | { type: "dropImage" }
  | { type: "export"; format: "png" | "svg"; data: string };

export interface AttentionView {
  modelLabel: string;
  adapterLabel: string;
  /** false: the base model alone (no adapter), so there is no tuned attention to compare. */
  hasAdapter: boolean;
  prompt: string;
  input: string;
  response: string;
  busy: boolean;
  error?: string;
  /** The name of the image the prompt is about (from the chat); absent without one. */
  image?: string;
  report?: ReportWithImage;
}

/** An attention report; with a multimodal adapter and an image, it says where the answer looks in the picture. */
export type ReportWithImage = AttentionReport & { image?: ImageAttention };

export type AttentionToWebview = { type: "view"; view: AttentionView };

// ---------------------------------------------------------------- validation

type Field = "string" | "number" | "boolean" | "object" | readonly string[];
type Shape = Record<string, Field>;

/** The fields each message type must have, and their kinds (a list means one of those strings). */
const CHAT: Record<ChatToHost["type"], Shape> = {
  ready: {},
  send: { text: "string", input: "string", compare: "boolean", params: "object" },
  stop: {},
  clear: {},
  undoClear: {},
  copy: { index: "number" },
  chooseModel: {},
  chooseAdapter: { adapter: "string" },
  showAttention: { index: "number" },
  attachImage: { name: "string", data: "string" },
  attachImageUri: { uri: "string" },
  chooseImage: {},
  removeImage: {},
};
const PARAMS: Shape = { temperature: "number", topP: "number", maxTokens: "number", template: ["auto", "chat", "alpaca"] };
const TRAINING: Record<TrainingToHost["type"], Shape> = { ready: {}, stop: {}, resume: {}, openFolder: {} };
const ATTENTION: Record<AttentionToHost["type"], Shape> = {
  ready: {},
  analyze: { prompt: "string", input: "string", response: "string" },
  dropImage: {},
  export: { format: ["png", "svg"], data: "string" },
};

/** Why `raw` does not fit `shape`, or undefined when it does. */
function misfit(raw: Record<string, unknown>, shape: Shape, where: string): string | undefined {
  for (const [key, kind] of Object.entries(shape)) {
    const v = raw[key];
    const ok = Array.isArray(kind)
      ? typeof v === "string" && kind.includes(v)
      : kind === "object"
        ? typeof v === "object" && v !== null && !Array.isArray(v)
        : kind === "number"
          ? typeof v === "number" && Number.isFinite(v)
          : typeof v === kind;
    if (!ok) return `${where}.${key}: expected ${Array.isArray(kind) ? kind.join(" | ") : kind}, got ${JSON.stringify(v)?.slice(0, 40)}`;
  }
  return undefined;
}

export type Checked<T> = { ok: true; message: T } | { ok: false; error: string };

function checkAgainst<T>(table: Record<string, Shape>, raw: unknown, extra?: (m: Record<string, unknown>) => string | undefined): Checked<T> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return { ok: false, error: "message is not an object" };
  const m = raw as Record<string, unknown>;
  if (typeof m.type !== "string" || !Object.hasOwn(table, m.type)) return { ok: false, error: `unknown message type ${JSON.stringify(m.type)}` };
  const why = misfit(m, table[m.type], m.type) ?? extra?.(m);
  return why === undefined ? { ok: true, message: m as T } : { ok: false, error: why };
}

export function checkChatMessage(raw: unknown): Checked<ChatToHost> {
  return checkAgainst<ChatToHost>(CHAT, raw, (m) => {
    if (m.type === "send") {
      const p = m.params as Record<string, unknown>;
      const why = misfit(p, PARAMS, "send.params");
      if (why) return why;
      if ((p.temperature as number) < 0 || (p.temperature as number) > 5) return "send.params.temperature: must be between 0 and 5";
      if ((p.topP as number) <= 0 || (p.topP as number) > 1) return "send.params.topP: must be in (0, 1]";
      if (!Number.isInteger(p.maxTokens) || (p.maxTokens as number) < 1 || (p.maxTokens as number) > 8192) return "send.params.maxTokens: must be a whole number from 1 to 8192";
      if ((m.text as string).trim() === "") return "send.text: empty message";
    }
    if (m.type === "attachImage") {
      const data = m.data as string;
      // What a user can send is checked in the webview first (with a message in the chat); past this, the webview misbehaves.
      if (data.length > MAX_IMAGE_BASE64_CHARS) return "attachImage.data: too large";
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data)) return "attachImage.data: not base64";
      if ((m.name as string).length > 1024) return "attachImage.name: too long";
    }
    if (m.type === "attachImageUri" && !/^[a-z][a-z0-9+.-]*:/i.test(m.uri as string)) return "attachImageUri.uri: not a URI";
    if ((m.type === "copy" || m.type === "showAttention") && (!Number.isInteger(m.index) || (m.index as number) < 0)) return `${m.type}.index: must be a whole number ≥ 0`;
    return undefined;
  });
}

export function checkTrainingMessage(raw: unknown): Checked<TrainingToHost> {
  return checkAgainst<TrainingToHost>(TRAINING, raw);
}

/** Exports are capped: a PNG data URL or SVG text of a few megabytes at most. */
export const MAX_EXPORT_CHARS = 32 * 1024 * 1024;

export function checkAttentionMessage(raw: unknown): Checked<AttentionToHost> {
  return checkAgainst<AttentionToHost>(ATTENTION, raw, (m) => {
    if (m.type === "analyze" && (m.prompt as string).trim() === "") return "analyze.prompt: empty prompt";
    if (m.type === "export") {
      const data = m.data as string;
      if (data.length > MAX_EXPORT_CHARS) return "export.data: too large";
      if (m.format === "png" && !data.startsWith("data:image/png;base64,")) return "export.data: not a PNG data URL";
      if (m.format === "svg" && !data.trimStart().startsWith("<svg")) return "export.data: not SVG text";
    }
    return undefined;
  });
}

/**
 * What the host does with each message a webview posts: check it, log and drop it when malformed,
 * else handle it; a handler that fails is reported through `onError`, never thrown to the caller
 * (the extension host). Returns whether the message was handled.
 */
export async function receive<T>(
  raw: unknown,
  check: (raw: unknown) => Checked<T>,
  handle: (m: T) => unknown,
  log: { warn(line: string): void; error(line: string): void },
  where: string,
  onError: (message: string) => void,
): Promise<boolean> {
  const c = check(raw);
  if (!c.ok) {
    log.warn(`${where}: ignored a malformed message from the webview: ${c.error}`);
    return false;
  }
  try {
    await handle(c.message);
    return true;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    log.error(`${where}: ${message}`);
    onError(message);
    return false;
  }
}
