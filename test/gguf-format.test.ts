/**
 * The GGUF format itself: files written by gguf-write.ts read back with gguf.ts (every metadata
 * type, tensors of several types, alignment and padding) and equal llama.cpp's own file byte for
 * byte; ggml's tensor types dequantize and quantize exactly as ggml's reference code does.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FIXTURES } from "./fixtures";
import { readGguf, readTensorBytes, type GgufValue } from "../engine/formats/gguf";
import { arr, bool, f32, f64, i16, i32, i64, i8, str, u16, u32, u64, u8, writeGguf, type GgufTypedValue } from "../engine/formats/gguf-write";
import { ggmlTypeByName } from "../engine/formats/ggml-types";

const STORIES_F32 = path.join(FIXTURES, "stories260k/gguf/stories260K-f32.v3.gguf");

function tmpFile(name: string): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), "excitor-ggfmt-")), name);
}

/** Deterministic bytes (a linear congruential generator), so a misplaced tensor cannot match by luck. */
function bytesOf(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

test("writeGguf: metadata of every GGUF type reads back with its value", () => {
  const file = tmpFile("meta.gguf");
  const tokens = ["<unk>", "<s>", "</s>", "héllo ▁world", ""];
  const metadata: Record<string, GgufTypedValue> = {
    "t.u8": u8(255),
    "t.i8": i8(-128),
    "t.u16": u16(65535),
    "t.i16": i16(-32768),
    "t.u32": u32(4294967295),
    "t.i32": i32(-2147483648),
    "t.f32": f32(10000),
    "t.f32.eps": f32(1e-5),
    "t.bool.true": bool(true),
    "t.bool.false": bool(false),
    "t.str": str("llama ✓"),
    "t.str.empty": str(""),
    "t.u64": u64(2n ** 63n + 5n),
    "t.u64.small": u64(7),
    "t.i64": i64(-(2n ** 62n)),
    "t.f64": f64(Math.PI),
    "t.arr.str": arr("str", tokens),
    "t.arr.f32": arr("f32", new Float32Array([0, -1.5, 3.25e-3])),
    "t.arr.i32": arr("i32", new Int32Array([1, -2, 3])),
    "t.arr.u8": arr("u8", [1, 2, 255]),
    "t.arr.bool": arr("bool", [true, false]),
    "t.arr.empty": arr("u32", []),
  };
  writeGguf(file, metadata, [{ name: "x", shape: [4], type: "F32", data: () => new Uint8Array(16) }]);
  const g = readGguf(file);
  assert.equal(g.version, 3);
  const expected: Record<string, GgufValue> = {
    "t.u8": 255,
    "t.i8": -128,
    "t.u16": 65535,
    "t.i16": -32768,
    "t.u32": 4294967295,
    "t.i32": -2147483648,
    "t.f32": 10000,
    "t.f32.eps": Math.fround(1e-5),
    "t.bool.true": true,
    "t.bool.false": false,
    "t.str": "llama ✓",
    "t.str.empty": "",
    "t.u64": 2n ** 63n + 5n,
    "t.u64.small": 7,
    "t.i64": -(2n ** 62n),
    "t.f64": Math.PI,
    "t.arr.str": tokens,
    "t.arr.f32": new Float32Array([0, -1.5, 3.25e-3]),
    "t.arr.i32": new Int32Array([1, -2, 3]),
    "t.arr.u8": [1, 2, 255],
    "t.arr.bool": [true, false],
    "t.arr.empty": [],
  };
  assert.deepEqual([...g.metadata.keys()], Object.keys(expected), "keys in the order given");
  for (const [k, v] of Object.entries(expected)) assert.deepEqual(g.metadata.get(k), v, k);
});

test("writeGguf: tensors of several types, a 3-D one, land aligned with their bytes, shapes and types", () => {
  for (const alignment of [undefined, 64]) {
    const file = tmpFile("tensors.gguf");
    const specs = [
      { name: "a", shape: [3], type: "F32" }, // 12 bytes: the next tensor needs padding
      { name: "blk.0.q8", shape: [2, 64], type: "Q8_0" },
      { name: "blk.0.q4", shape: [3, 32], type: "Q4_0" },
      { name: "c3", shape: [2, 3, 5], type: "F16" }, // ne on disk [5, 3, 2]
      { name: "k", shape: [1, 256], type: "Q6_K" },
      { name: "last", shape: [7], type: "BF16" },
    ];
    const data = specs.map((s, i) => bytesOf((s.shape.reduce((a, b) => a * b) / ggmlTypeByName(s.type).blockSize) * ggmlTypeByName(s.type).typeSize, i + 1));
    let asked = 0;
    const order: string[] = [];
    const meta: Record<string, GgufTypedValue> = { "general.architecture": str("llama") };
    if (alignment) meta["general.alignment"] = u32(alignment);
    writeGguf(
      file,
      meta,
      specs.map((s, i) => ({ ...s, data: () => (asked++, data[i]) })),
      { onTensor: (name) => order.push(name) },
    );
    assert.equal(asked, specs.length, "each tensor's data is asked for once");
    assert.deepEqual(order, specs.map((s) => s.name));
    const g = readGguf(file);
    const raw = fs.readFileSync(file);
    const align = alignment ?? 32;
    specs.forEach((s, i) => {
      const t = g.tensors.get(s.name)!;
      assert.deepEqual(t.shape, s.shape, s.name);
      assert.equal(t.type.name, s.type, s.name);
      assert.equal(t.offset % align, 0, `${s.name} aligned to ${align}`);
      assert.deepEqual(readTensorBytes(g, t), data[i], s.name);
    });
    // the padding after "a" (12 bytes) up to the next tensor is zeros, and the file ends aligned
    const a = g.tensors.get("a")!;
    assert.ok(raw.subarray(a.offset + 12, g.tensors.get("blk.0.q8")!.offset).every((b) => b === 0));
    assert.equal(raw.length % align, 0);
    // the 3-D tensor's ne[] on disk is innermost first: [5, 3, 2]
    const at = raw.indexOf(Buffer.from("c3"));
    assert.equal(raw.readUInt32LE(at + 2), 3);
    assert.deepEqual([0, 1, 2].map((d) => Number(raw.readBigUInt64LE(at + 6 + 8 * d))), [5, 3, 2]);
  }
});

test("writeGguf: rewriting llama.cpp's stories260K file gives the same bytes", () => {
  const g = readGguf(STORIES_F32);
  // the GGUF types llama.cpp's converter gave these keys (integers are UINT32, the epsilon FLOAT32)
  const typed = (key: string, v: GgufValue): GgufTypedValue => {
    if (typeof v === "string") return str(v);
    if (v instanceof Float32Array) return arr("f32", v);
    if (v instanceof Int32Array) return arr("i32", v);
    if (Array.isArray(v)) return arr("str", v as string[]);
    if (key.endsWith("epsilon")) return f32(v as number);
    return u32(v as number);
  };
  const metadata: Record<string, GgufTypedValue> = {};
  for (const [k, v] of g.metadata) metadata[k] = typed(k, v);
  const file = tmpFile("stories.gguf");
  writeGguf(file, metadata, [...g.tensors.values()].map((t) => ({ name: t.name, shape: t.shape, type: t.type, data: () => readTensorBytes(g, t) })));
  assert.ok(fs.readFileSync(file).equals(fs.readFileSync(STORIES_F32)));
});

test("writeGguf: refuses what it cannot write, before touching the file; a bad data() leaves the old file", () => {
  const file = tmpFile("bad.gguf");
  fs.writeFileSync(file, "old");
  const one = (over: object) => [{ name: "w", shape: [64], type: "Q8_0", data: () => new Uint8Array(68), ...over }];
  assert.throws(() => writeGguf(file, { x: u8(256) }, []), /metadata x: 256 is not a u8/);
  assert.throws(() => writeGguf(file, { x: u32(-1) }, []), /not a u32/);
  assert.throws(() => writeGguf(file, { x: u64(2 ** 60) }, []), /bigint/);
  assert.throws(() => writeGguf(file, { "general.alignment": u32(48) }, []), /power of two/);
  assert.throws(() => writeGguf(file, {}, one({ shape: [48] })), /not a whole number of Q8_0 blocks/);
  assert.throws(() => writeGguf(file, {}, one({ shape: [1, 1, 1, 1, 64] })), /5 dimensions/);
  assert.throws(() => writeGguf(file, {}, [...one({}), ...one({})]), /w is given twice/);
  assert.throws(() => writeGguf(file, {}, one({ data: () => new Uint8Array(34) })), /w data is 34 bytes; \[64\] of Q8_0 takes 68/);
  assert.equal(fs.readFileSync(file, "utf8"), "old");
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ["bad.gguf"], "no temporary file left");
});
