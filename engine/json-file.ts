/**
 * JSON files that must hold an object (config.json, adapter_config.json, a shard index) and the
 * type checks for values inside them. A file holding `null`, a list or a number is an input
 * error naming the file here, rather than a TypeError in whichever reader touches it first.
 */
import * as fs from "node:fs";
import { ExcitorInputError } from "./errors";

export type JsonObject = Record<string, unknown>;

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The JSON type of a value, for messages: "null", "a list", "a number", "an object"... */
export function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  return `a ${typeof v}`;
}

export function readJsonObject(file: string): JsonObject {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new ExcitorInputError(`${file}: cannot read (${(e as Error).message})`, file);
  }
  let value: unknown;
  try {
    value = JSON.parse(text.replace(/^\uFEFF/, "")); // editors on Windows may save a byte-order mark
  } catch (e) {
    throw new ExcitorInputError(`${file}: not valid JSON (${(e as Error).message})`, file);
  }
  if (!isJsonObject(value)) throw new ExcitorInputError(`${file}: must hold a JSON object, not ${jsonType(value)}`, file);
  return value;
}
