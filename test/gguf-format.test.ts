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
import { dequantize, floatToHalf, ggmlToBlocks, halfToFloat, quantize, QUANTIZABLE_GGML_TYPES } from "../engine/formats/ggml-quants";
import { createHash } from "node:crypto";

const STORIES_F32 = path.join(FIXTURES, "stories260k/gguf/stories260K-f32.v3.gguf");
const STORIES_Q8 = path.join(FIXTURES, "stories260k/gguf/stories260K-q8_0.gguf");

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

// ---- ggml-quants.ts against ggml's reference (test/fixtures/ggml-quants/make.py) -----------------

interface Reference {
  quantize: Record<"input" | "floatEdges", Record<string, string> & { count: number; f32: string }>;
  dequantize: Record<string, { count: number; bytes: string; f32: string }>;
  f16All: { count: number; sha256: string };
}
const REF = JSON.parse(fs.readFileSync(path.join(FIXTURES, "ggml-quants/reference.json"), "utf8")) as Reference;
const b64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));
const f32Of = (s: string) => new Float32Array(b64(s).slice().buffer);

/** Bit-for-bit equality of float32 arrays, except that any NaN matches any NaN (payloads are not kept by every conversion). */
function assertSameFloats(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(expected[i]) && Number.isNaN(actual[i])) continue;
    if (a[i] !== e[i]) assert.fail(`${what}: value ${i} is ${actual[i]} (0x${a[i].toString(16)}), ggml gives ${expected[i]} (0x${e[i].toString(16)})`);
  }
}

test("dequantize: all 11 types equal ggml's reference bit for bit", () => {
  const names = Object.keys(REF.dequantize);
  assert.deepEqual(names.sort(), ["BF16", "F16", "F32", "Q4_0", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q5_K", "Q6_K", "Q8_0"]);
  for (const name of names) {
    const r = REF.dequantize[name];
    assertSameFloats(dequantize(ggmlTypeByName(name), b64(r.bytes), r.count), f32Of(r.f32), name);
    // into a reused buffer, at an offset, with old values in it
    const reused = new Float32Array(r.count + 9).fill(-7).subarray(3);
    assertSameFloats(dequantize(ggmlTypeByName(name), b64(r.bytes), r.count, reused), f32Of(r.f32), `${name} into a reused buffer`);
  }
});

test("halfToFloat / F16: every fp16 value as ggml widens it; NaNs stay NaN", () => {
  const finite: number[] = [];
  const nans: number[] = [];
  for (let h = 0; h < 65536; h++) ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0 ? nans : finite).push(h);
  assert.equal(finite.length, REF.f16All.count);
  const out = dequantize(ggmlTypeByName("F16"), new Uint8Array(new Uint16Array(finite).buffer), finite.length);
  assert.equal(createHash("sha256").update(out).digest("hex"), REF.f16All.sha256);
  finite.forEach((h, i) => assert.ok(Object.is(halfToFloat(h), out[i]), `halfToFloat(0x${h.toString(16)})`));
  for (const h of nans) assert.ok(Number.isNaN(halfToFloat(h)));
});

test("quantize: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 write ggml's reference bytes", () => {
  for (const set of ["input", "floatEdges"] as const) {
    const r = REF.quantize[set];
    const x = f32Of(r.f32);
    assert.equal(x.length, r.count);
    for (const name of QUANTIZABLE_GGML_TYPES) {
      if (!(name in r)) continue;
      assert.deepEqual(quantize(name, x), b64(r[name]), `${name} of ${set}`);
    }
  }
  assert.deepEqual(Object.keys(REF.quantize.input).filter((k) => k !== "count" && k !== "f32").sort(), [...QUANTIZABLE_GGML_TYPES].sort());
  // floatToHalf (one value) rounds as the F16 quantizer (whole arrays) does
  const edges = f32Of(REF.quantize.floatEdges.f32);
  const f16 = new Uint16Array(b64(REF.quantize.floatEdges.F16).buffer);
  edges.forEach((v, i) => assert.equal(floatToHalf(v), f16[i], `floatToHalf(${v})`));
  // into a reused buffer with old bytes in it: the same bytes
  const x = f32Of(REF.quantize.input.f32);
  for (const name of QUANTIZABLE_GGML_TYPES) {
    const dirty = new Uint8Array(b64(REF.quantize.input[name]).length + 7).fill(0xa5);
    assert.deepEqual(quantize(name, x, dirty), b64(REF.quantize.input[name]), `${name} into a reused buffer`);
  }
  assert.throws(() => quantize("Q4_K", new Float32Array(256)), /cannot quantize to ggml type Q4_K/);
  assert.throws(() => quantize("Q8_0", new Float32Array(48)), /48 values are not a whole number of Q8_0 blocks/);
});

test("ggmlToBlocks: Q8_0 and Q4_0 as MatMulNBits blocks give dequantize()'s values by the block formula", () => {
  for (const [name, bits] of [["Q8_0", 8], ["Q4_0", 4]] as const) {
    const r = REF.dequantize[name];
    const type = ggmlTypeByName(name);
    const cols = 64;
    const rows = r.count / cols;
    const b = ggmlToBlocks(type, b64(r.bytes), rows, cols)!;
    assert.deepEqual([b.bits, b.rows, b.cols, b.blockSize, b.zeroPoints], [bits, rows, cols, 32, undefined]);
    // quantized.ts: block k of row n holds elements k·32.., value = scale · (code − 2^(bits−1)); 4-bit: element 2j low nibble, 2j+1 high
    const values = new Float32Array(rows * cols);
    for (let i = 0; i < values.length; i++) {
      const code = bits === 8 ? b.data[i] : (b.data[i >> 1] >> ((i & 1) * 4)) & 15;
      values[i] = b.scales[Math.floor(i / 32)] * (code - (1 << (bits - 1)));
    }
    assertSameFloats(values, dequantize(type, b64(r.bytes), r.count), name);
  }
  assert.equal(ggmlToBlocks(ggmlTypeByName("Q4_1"), new Uint8Array(20), 1, 32), undefined);
  assert.equal(ggmlToBlocks(ggmlTypeByName("Q8_0"), new Uint8Array(34 * 3), 1, 96 - 48), undefined, "a row that is not whole blocks");
});

test("stories260K Q8_0 (llama.cpp's file) dequantizes to the f32 file's weights within half a step; its codes are round(x / fp16(d))", () => {
  const g8 = readGguf(STORIES_Q8);
  const g32 = readGguf(STORIES_F32);
  let tensors = 0;
  let codes = 0;
  let offByOne = 0;
  for (const t of g8.tensors.values()) {
    if (t.type.name !== "Q8_0") continue;
    tensors++;
    const bytes = readTensorBytes(g8, t);
    const x = new Float32Array(readTensorBytes(g32, g32.tensors.get(t.name)!).buffer);
    const y = dequantize(t.type, bytes, x.length);
    const ours = quantize("Q8_0", x);
    for (let i = 0; i < x.length / 32; i++) {
      const p = 34 * i;
      const d = halfToFloat(bytes[p] | (bytes[p + 1] << 8));
      // llama.cpp wrote d as ggml's reference does: fp16(max|x| / 127)
      assert.equal(bytes[p] | (bytes[p + 1] << 8), ours[p] | (ours[p + 1] << 8), `${t.name} block ${i}: scale`);
      for (let j = 0; j < 32; j++) {
        const v = x[32 * i + j];
        const code = (bytes[p + 2 + j] << 24) >> 24;
        const q = Math.round(Math.abs(v / d)); // half away from zero, as roundf
        assert.equal(code, (v < 0 ? -q : q) + 0, `${t.name}[${32 * i + j}]: code is round(x / fp16(d))`);
        assert.ok(Math.abs(y[32 * i + j] - v) <= d / 2 + 1e-12, `${t.name}[${32 * i + j}]: ${y[32 * i + j]} vs ${v}, step ${d}`);
        const mine = (ours[p + 2 + j] << 24) >> 24;
        assert.ok(Math.abs(mine - code) <= 1, `${t.name}[${32 * i + j}]: ggml's reference code ${mine} vs the file's ${code}`);
        codes++;
        if (mine !== code) offByOne++;
      }
    }
  }
  assert.equal(tensors, 32, "every linear but the five ffn_down (rows of 172) is Q8_0");
  assert.equal(codes, 237056);
  // today's reference rounds x · fp16-less 1/d instead of x / fp16(d): 1,666 codes (0.7%) land one step away
  assert.equal(offByOne, 1666);
});
