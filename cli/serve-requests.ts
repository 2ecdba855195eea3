/**
 * The check every line `excitor serve` reads passes before the engine acts on it. Its stdin is a
 * protocol boundary: whatever the line holds (not JSON, null, a number, a wrong type, a typo'd
 * field, a huge value), the answer is one `error` event naming the field and what is wrong, and
 * the process goes on. Nothing here throws or recurses into the input, so a deeply nested or
 * huge line costs no more than reading it. The defaults of optional fields (documented in
 * serve-protocol.ts) are filled in here, so the engine never sees a missing field.
 */
import * as path from "node:path";
import { DEFAULT_SAMPLING } from "../engine/generate/sampler";
import { numberProblem, rangeText, SAMPLING_RANGES, type NumberRule } from "../engine/option-ranges";
import type { ChatMessage } from "../engine/tokenizer/tokenizer";
import type { AttentionRequest, GenerateRequest, PromptTemplate, StopRequest } from "./serve-protocol";

/** What the checks need to know about the loaded model. */
export interface RequestLimits {
  /** The model's context in tokens. */
  maxPositions: number;
  /** The template of requests that name none: the one the `ready` event announced. */
  template: PromptTemplate;
}

/** A generate request with every default filled in. */
export type CheckedGenerate = Required<Omit<GenerateRequest, "image">> & Pick<GenerateRequest, "image">;
/** An attention request with its defaults filled in; `response` and `image` stay optional (absent: the model answers; no picture). */
export type CheckedAttention = Required<Omit<AttentionRequest, "response" | "image">> & Pick<AttentionRequest, "response" | "image">;
export type CheckedRequest = CheckedGenerate | CheckedAttention | StopRequest;

export type RequestCheck = { ok: true; request: CheckedRequest } | { ok: false; id?: number; error: string };

/** The largest answer budget a request may name (2^20 tokens); the model's context still ends an answer. */
export const MAX_ANSWER_TOKENS = 1 << 20;
/** `excitor chat`'s answer budget, the default of a request that names none. */
const CHAT_MAX_TOKENS = 512;
const ROLES = ["system", "user", "assistant"] as const;
const OPS = ["generate", "attention", "stop"] as const;
type Op = (typeof OPS)[number];

/**
 * A field's check: the value, or why not. `why` reads "expected …, got …"; `at` extends the
 * field's name for an error inside it (a message of the conversation: "[2].role").
 */
type Rule = { ok: true; value: unknown } | { ok: false; why: string; at?: string };
interface Field {
  check: (v: unknown, limits: RequestLimits) => Rule;
  /** What the field holds, for the message when it is missing. */
  wants: (limits: RequestLimits) => string;
  required?: boolean;
  default?: (limits: RequestLimits) => unknown;
}

const good = (value: unknown): Rule => ({ ok: true, value });
const bad = (expected: string, got: unknown, at?: string): Rule => ({ ok: false, why: `expected ${expected}, got ${describe(got)}`, at });

/** A field whose value passes `test`; `wants` says in words what passes. */
function field(wants: (l: RequestLimits) => string, test: (v: unknown, l: RequestLimits) => boolean, extra: Partial<Field> = {}): Field {
  return { wants, check: (v, l) => (test(v, l) ? good(v) : bad(wants(l), v)), ...extra };
}
const isWhole = (v: unknown, min: number, max: number) => typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
const ID_WANTS = "a whole number ≥ 0";
/** A number field checked against an option's range, in the range's own words ("a number between 0 and 5"). */
const inRange = (rule: NumberRule, dflt: number) =>
  field(() => `a ${rule.integer ? "whole " : ""}number ${rangeText(rule)}`, (v) => typeof v === "number" && numberProblem(v, rule) === undefined, { default: () => dflt });
const isId = (v: unknown) => isWhole(v, 0, Number.MAX_SAFE_INTEGER);
const id = (required: boolean) => field(() => ID_WANTS, isId, { required });
const text = (extra: Partial<Field> = {}) => field(() => "a string", (v) => typeof v === "string", extra);
/** A picture: the engine reads the file itself, so the path must not depend on the engine's working folder. */
const imagePath = () => field(() => "the absolute path of a PNG or JPEG file", (v) => typeof v === "string" && v.length <= 4096 && path.isAbsolute(v));
const oneOf = (names: readonly string[], extra: Partial<Field>) => field(() => either(names), (v) => typeof v === "string" && names.includes(v), extra);

const FIELDS: Record<Op, Record<string, Field>> = {
  generate: {
    id: id(true),
    op: text({ required: true }),
    messages: { wants: () => "a non-empty list of messages {role, content}", check: checkMessages, required: true },
    template: oneOf(["chat", "alpaca"], { default: (l) => l.template }),
    input: text({ default: () => "" }),
    useAdapter: field(() => "true or false", (v) => typeof v === "boolean", { default: () => true }),
    // The same ranges as the CLI's --temperature and --top-p (engine/option-ranges.ts).
    temperature: inRange(SAMPLING_RANGES.temperature, DEFAULT_SAMPLING.temperature),
    topP: inRange(SAMPLING_RANGES.topP, DEFAULT_SAMPLING.topP),
    // An editor's answer-length setting is not tied to one model: a budget past the context is
    // honoured as far as the context goes (the answer ends with finishReason "length"), as in `excitor chat`.
    maxTokens: field(
      () => `a whole number from 1 to ${MAX_ANSWER_TOKENS}`,
      (v) => isWhole(v, 1, MAX_ANSWER_TOKENS),
      { default: (l) => Math.min(CHAT_MAX_TOKENS, l.maxPositions) },
    ),
    seed: inRange(SAMPLING_RANGES.seed, DEFAULT_SAMPLING.seed),
    image: imagePath(),
  },
  attention: {
    id: id(true),
    op: text({ required: true }),
    // An empty instruction leaves only the template to analyse: nothing the user asked about.
    prompt: field(() => "a non-empty string", (v) => typeof v === "string" && v.trim() !== "", { required: true }),
    input: text({ default: () => "" }),
    response: text(),
    template: oneOf(["chat", "alpaca", "none"], { default: (l) => l.template }),
    image: imagePath(),
  },
  stop: {
    id: id(false),
    op: text({ required: true }),
    target: id(true),
  },
};

/** A parsed line of stdin → a checked request with its defaults, or the one-line reason it is not one. */
export function checkRequest(raw: unknown, limits: RequestLimits): RequestCheck {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return { ok: false, error: `expected a request object {id, op, …}, got ${describe(raw)}` };
  const r = raw as Record<string, unknown>;
  // The id first: every later error is answered with it, so the client knows which request failed.
  if (r.id !== undefined && !isId(r.id)) return { ok: false, error: `id: expected ${ID_WANTS}, got ${describe(r.id)}` };
  const reqId = r.id as number | undefined;
  const fail = (error: string): RequestCheck => (reqId === undefined ? { ok: false, error } : { ok: false, id: reqId, error });
  const op = r.op;
  if (op === undefined) return fail(`op: missing, expected ${either(OPS)}`);
  if (typeof op !== "string") return fail(`op: expected ${either(OPS)}, got ${describe(op)}`);
  if (!(OPS as readonly string[]).includes(op)) return fail(`op: unknown op ${describe(op)} (expected ${either(OPS)})`);
  const fields = FIELDS[op as Op];
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(fields)) {
    const v = r[name];
    if (v === undefined) {
      if (f.required) return fail(`${op}.${name}: missing, expected ${f.wants(limits)}`);
      if (f.default) out[name] = f.default(limits);
      continue;
    }
    const c = f.check(v, limits);
    if (!c.ok) return fail(`${op}.${name}${c.at ?? ""}: ${c.why}`);
    out[name] = c.value;
  }
  for (const name of Object.keys(r)) if (!Object.hasOwn(fields, name)) return fail(`${op}.${name}: unknown field (${op} takes ${Object.keys(fields).join(", ")})`);
  return { ok: true, request: out as unknown as CheckedRequest };
}

/** The conversation: a non-empty array of {role, content} (nothing else) ending with the user's message. */
function checkMessages(v: unknown): Rule {
  if (!Array.isArray(v) || v.length === 0) return bad("a non-empty list of messages {role, content}", v);
  const out: ChatMessage[] = [];
  for (let i = 0; i < v.length; i++) {
    const m: unknown = v[i];
    if (typeof m !== "object" || m === null || Array.isArray(m)) return bad("a message {role, content}", m, `[${i}]`);
    const msg = m as Record<string, unknown>;
    if (typeof msg.role !== "string" || !(ROLES as readonly string[]).includes(msg.role)) return bad(either(ROLES), msg.role, `[${i}].role`);
    if (typeof msg.content !== "string") return bad("a string", msg.content, `[${i}].content`);
    for (const k of Object.keys(msg)) if (k !== "role" && k !== "content") return { ok: false, why: "unknown field (a message has role, content)", at: `[${i}].${k}` };
    out.push({ role: msg.role, content: msg.content });
  }
  const last = out.length - 1;
  if (out[last]?.role !== "user") return { ok: false, why: `the conversation must end with the user's message, got ${JSON.stringify(out[last]?.role)}`, at: `[${last}].role` };
  return good(out);
}

/** ["a", "b", "c"] → `"a", "b" or "c"`. */
function either(names: readonly string[]): string {
  const q = names.map((n) => JSON.stringify(n));
  return q.length < 2 ? q.join("") : `${q.slice(0, -1).join(", ")} or ${q[q.length - 1]}`;
}

/** A short, safe picture of any JSON value: strings cut to 40 characters, containers by kind, never the whole of a huge or deep value. */
export function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return v.length === 0 ? "an empty list" : `a list of ${v.length}`;
  if (typeof v === "object") return "an object";
  if (typeof v === "string") {
    if (v.length <= 40) return JSON.stringify(v);
    const cut = /[\uD800-\uDBFF]/.test(v.charAt(39)) ? 39 : 40; // not between the halves of a surrogate pair
    return `${JSON.stringify(v.slice(0, cut))}… (${v.length} characters)`;
  }
  return String(v);
}
