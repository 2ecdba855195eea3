/** Safetensors bytes written as given, past every check the engine's writer makes: for hostile-file tests. */
import * as fs from "node:fs";
import * as path from "node:path";

/**
 * Writes `file` with this header (a JSON value, or raw text) and data (bytes, or that many zero
 * bytes); `declaredLength` replaces the header length the file states. Returns `file`.
 */
export function rawSafetensors(file: string, header: unknown, data: Buffer | number, declaredLength?: bigint): string {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header), "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(declaredLength ?? BigInt(json.length));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, Buffer.concat([len, json, typeof data === "number" ? Buffer.alloc(data) : data]));
  return file;
}
