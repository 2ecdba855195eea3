/**
 * Reads instruction-tuning datasets into one record type the encoder understands.
 *
 * Accepted files (the format is detected per record, so files may mix shapes):
 * - a JSON array of records (a file whose first non-blank character is "["), or
 * - JSON Lines: one record per line, blank lines skipped;
 * and records of these shapes:
 * - Alpaca `{instruction, input?, output}`;
 * - chat `{messages: [{role, content}]}`, role one of system, user, assistant, tool;
 * - ShareGPT `{conversations: [{from, value}]}` (from human/user → user, gpt/assistant/model →
 *   assistant, system → system).
 * Alpaca and chat records may name a picture, `"image": "path"` relative to the dataset file
 * (spec § Multimodal); an `<image>` marker in their text (LLaVA style) is removed, since no
 * image token enters the sequence.
 *
 * Every problem is an ExcitorInputError naming the file, the line (JSON Lines) or record number
 * (JSON array) and the field, because a user with a 50,000-line file must be able to find it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ExcitorInputError } from "../errors";
import type { ChatMessage } from "../tokenizer/tokenizer";
import { decodeUtf8 } from "./utf8";

interface RecordPosition {
  /** 1-based line in a JSON Lines file; for a JSON array, the record's index + 1. */
  line: number;
  /** True for records of a JSON array file, where `line` is a record number, not a line. */
  fromArray?: boolean;
}

/** A record's picture: its `image` field resolved from the dataset file's folder. */
interface RecordImage {
  image?: string;
}

export type DatasetRecord =
  | ({ kind: "alpaca"; instruction: string; input: string; output: string } & RecordPosition & RecordImage)
  | ({ kind: "chat"; messages: ChatMessage[] } & RecordPosition & RecordImage)
  /** Plain text (`{"text": ...}`): every token is a target; for pretraining and continued pretraining. */
  | ({ kind: "text"; text: string } & RecordPosition);

/** Where a record is, for messages: "data.jsonl:7" or "data.json: record 7". */
export function recordLocation(file: string, rec: RecordPosition): string {
  return rec.fromArray ? `${file}: record ${rec.line}` : `${file}:${rec.line}`;
}

/** Reads and validates a dataset file; throws ExcitorInputError on the first problem. */
export function readDataset(file: string): DatasetRecord[] {
  let bytes: Buffer;
  try {
    if (fs.statSync(file).isDirectory()) {
      throw new ExcitorInputError(`${file}: is a folder; expected a .json or .jsonl dataset file`, file);
    }
    bytes = fs.readFileSync(file);
  } catch (e) {
    if (e instanceof ExcitorInputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new ExcitorInputError(`${file}: file not found`, file);
    throw new ExcitorInputError(`${file}: cannot read (${shortMessage(e)})`, file);
  }
  const text = decodeUtf8(bytes, file); // drops a byte order mark

  const records = text.trimStart().startsWith("[") ? readArray(text, file) : readLines(text, file);
  if (records.length === 0) throw new ExcitorInputError(`${file}: dataset is empty`, file);
  return records;
}

function readArray(text: string, file: string): DatasetRecord[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const line = lineOfParseError(text, e);
    const where = line === undefined ? file : `${file}:${line}`;
    throw new ExcitorInputError(`${where}: malformed JSON (${shortMessage(e)})`, file, line);
  }
  if (!Array.isArray(value)) {
    throw new ExcitorInputError(`${file}: expected a JSON array of records, got ${typeName(value)}`, file);
  }
  return value.map((v, i) => parseRecord(v, { line: i + 1, fromArray: true }, file));
}

function readLines(text: string, file: string): DatasetRecord[] {
  const out: DatasetRecord[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const src = lines[i] as string;
    if (src.trim() === "") continue;
    const line = i + 1;
    let value: unknown;
    try {
      value = JSON.parse(src);
    } catch (e) {
      throw new ExcitorInputError(`${file}:${line}: malformed JSON (${shortMessage(e)})`, file, line);
    }
    out.push(parseRecord(value, { line }, file));
  }
  return out;
}

/**
 * Roles of chat records, as chat templates spell them. Anything else ("bot", "User") would be
 * rendered by a template as it stands or dropped, training on a conversation the file did not mean.
 */
const CHAT_ROLES = ["system", "user", "assistant", "tool"];

const SHAREGPT_ROLES: Record<string, string> = {
  human: "user",
  user: "user",
  gpt: "assistant",
  assistant: "assistant",
  model: "assistant",
  system: "system",
};

/** Detects a record's shape and validates its fields. */
function parseRecord(value: unknown, pos: RecordPosition, file: string): DatasetRecord {
  const where = recordLocation(file, pos);
  const fail = (what: string): never => {
    throw new ExcitorInputError(`${where}: ${what}`, file, pos.fromArray ? undefined : pos.line);
  };
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return fail(`record is not a JSON object (got ${typeName(value)})`);
  }
  const obj = value as Record<string, unknown>;
  const image = recordImage(obj, file, fail);
  const rec = parseShape(obj, pos, fail);
  if (image === undefined) return rec;
  if (rec.kind === "text") return fail(`"image" belongs to Alpaca and chat records; a text record has no prompt to ask about it`);
  return rec.kind === "alpaca"
    ? { ...rec, instruction: dropImageMarker(rec.instruction), input: dropImageMarker(rec.input), image }
    : { ...rec, messages: rec.messages.map((m) => ({ ...m, content: dropImageMarker(m.content) })), image };
}

/** The record's `image` path, resolved from the dataset file's folder; absent when the record has none. */
function recordImage(obj: Record<string, unknown>, file: string, fail: (what: string) => never): string | undefined {
  const v = obj["image"];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string" || v.trim() === "") return fail(`"image" must be the path of a PNG or JPEG file (relative to the dataset file), got ${v === "" ? "an empty string" : typeName(v)}`);
  return path.resolve(path.dirname(path.resolve(file)), v);
}

/** LLaVA puts "<image>" (often with a newline) where the picture goes; here the picture is no token. */
function dropImageMarker(text: string): string {
  return text.includes("<image>") ? text.replace(/ <image> /g, " ").replace(/[ \t]*<image>[ \t]*\n?/g, "").trim() : text;
}

/** Detects a record's shape and validates its fields. */
function parseShape(obj: Record<string, unknown>, pos: RecordPosition, fail: (what: string) => never): DatasetRecord {
  if ("messages" in obj) {
    const toRole = (role: string, field: string): string =>
      CHAT_ROLES.includes(role) ? role : fail(`"${field}" is "${role}"; expected one of ${CHAT_ROLES.join(", ")}`);
    const messages = parseTurns(obj["messages"], "messages", "role", "content", toRole, fail);
    return { kind: "chat", messages, ...pos };
  }
  if ("conversations" in obj) {
    const toRole = (from: string, field: string): string =>
      SHAREGPT_ROLES[from.toLowerCase()] ??
      fail(`"${field}" is "${from}"; expected one of ${Object.keys(SHAREGPT_ROLES).join(", ")}`);
    const messages = parseTurns(obj["conversations"], "conversations", "from", "value", toRole, fail);
    return { kind: "chat", messages, ...pos };
  }
  if ("instruction" in obj || "output" in obj) {
    const instruction = obj["instruction"];
    if (instruction === undefined || instruction === null) fail(`record has no instruction ("instruction" is missing)`);
    if (typeof instruction !== "string") return fail(`"instruction" must be a string, got ${typeName(instruction)}`);
    const input = obj["input"] ?? "";
    if (typeof input !== "string") return fail(`"input" must be a string, got ${typeName(input)}`);
    const output = obj["output"];
    if (output !== undefined && output !== null && typeof output !== "string") {
      return fail(`"output" must be a string, got ${typeName(output)}`);
    }
    if (typeof output !== "string" || output.trim() === "") {
      return fail(`record has no response ("output" is missing or empty)`);
    }
    return { kind: "alpaca", instruction, input, output, ...pos };
  }
  if ("text" in obj) {
    const text = obj["text"];
    if (typeof text !== "string") return fail(`"text" must be a string, got ${typeName(text)}`);
    if (text.trim() === "") return fail(`record has no text ("text" is empty)`);
    return { kind: "text", text, ...pos };
  }
  const keys = Object.keys(obj).filter((k) => k !== "image");
  return fail(
    `unknown record shape (keys: ${keys.length > 0 ? keys.join(", ") : "none"}); expected Alpaca ` +
      `{instruction, input?, output}, chat {messages: [{role, content}]}, ShareGPT {conversations: [{from, value}]} or text {text}`,
  );
}

/** Validates a list of turns (chat or ShareGPT) and maps roles; requires an assistant answer. */
function parseTurns(
  list: unknown,
  listField: string,
  roleField: string,
  textField: string,
  toRole: (role: string, field: string) => string,
  fail: (what: string) => never,
): ChatMessage[] {
  if (!Array.isArray(list)) {
    return fail(`"${listField}" must be an array of {${roleField}, ${textField}}, got ${typeName(list)}`);
  }
  if (list.length === 0) return fail(`"${listField}" is an empty list; expected turns {${roleField}, ${textField}} with an answer`);
  const messages = list.map((turn, i): ChatMessage => {
    const at = `${listField}[${i}]`;
    if (typeof turn !== "object" || turn === null || Array.isArray(turn)) {
      return fail(`"${at}" must be an object {${roleField}, ${textField}}, got ${typeName(turn)}`);
    }
    const t = turn as Record<string, unknown>;
    const str = (field: string): string => {
      const v = t[field];
      if (typeof v === "string") return v;
      return fail(`"${at}.${field}" must be a string, ${field in t ? `got ${typeName(v)}` : "but it is missing"}`);
    };
    const role = str(roleField);
    const content = str(textField);
    return { role: toRole(role, `${at}.${roleField}`), content };
  });
  if (!messages.some((m) => m.role === "assistant" && m.content.trim() !== "")) {
    fail(`record has no response (no assistant turn with content in "${listField}")`);
  }
  return messages;
}

/** V8 reports "... at position N"; turn that into a 1-based line number. */
function lineOfParseError(text: string, e: unknown): number | undefined {
  const m = /position (\d+)/.exec(e instanceof Error ? e.message : "");
  if (!m) return undefined;
  const pos = Math.min(Number(m[1]), text.length);
  let line = 1;
  for (let i = 0; i < pos; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function shortMessage(e: unknown): string {
  const s = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, " ").trim();
  return s.length > 120 ? s.slice(0, 117) + "..." : s;
}
