/**
 * ggml's tensor types as GGUF files number them (ggml.h `enum ggml_type`): each is a block of
 * `blockSize` elements stored in `typeSize` bytes. The ids are the file format's; the names are
 * the ones llama.cpp, Ollama and LM Studio show users ("Q4_K", "Q8_0").
 */
export interface GgmlType {
  id: number;
  name: string;
  /** Elements per block. */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
}

const TYPES: GgmlType[] = [
  { id: 0, name: "F32", blockSize: 1, typeSize: 4 },
  { id: 1, name: "F16", blockSize: 1, typeSize: 2 },
  { id: 2, name: "Q4_0", blockSize: 32, typeSize: 18 },
  { id: 3, name: "Q4_1", blockSize: 32, typeSize: 20 },
  { id: 6, name: "Q5_0", blockSize: 32, typeSize: 22 },
  { id: 7, name: "Q5_1", blockSize: 32, typeSize: 24 },
  { id: 8, name: "Q8_0", blockSize: 32, typeSize: 34 },
  { id: 9, name: "Q8_1", blockSize: 32, typeSize: 36 },
  { id: 10, name: "Q2_K", blockSize: 256, typeSize: 84 },
  { id: 11, name: "Q3_K", blockSize: 256, typeSize: 110 },
  { id: 12, name: "Q4_K", blockSize: 256, typeSize: 144 },
  { id: 13, name: "Q5_K", blockSize: 256, typeSize: 176 },
  { id: 14, name: "Q6_K", blockSize: 256, typeSize: 210 },
  { id: 15, name: "Q8_K", blockSize: 256, typeSize: 292 },
  { id: 16, name: "IQ2_XXS", blockSize: 256, typeSize: 66 },
  { id: 17, name: "IQ2_XS", blockSize: 256, typeSize: 74 },
  { id: 18, name: "IQ3_XXS", blockSize: 256, typeSize: 98 },
  { id: 19, name: "IQ1_S", blockSize: 256, typeSize: 50 },
  { id: 20, name: "IQ4_NL", blockSize: 32, typeSize: 18 },
  { id: 21, name: "IQ3_S", blockSize: 256, typeSize: 110 },
  { id: 22, name: "IQ2_S", blockSize: 256, typeSize: 82 },
  { id: 23, name: "IQ4_XS", blockSize: 256, typeSize: 136 },
  { id: 24, name: "I8", blockSize: 1, typeSize: 1 },
  { id: 25, name: "I16", blockSize: 1, typeSize: 2 },
  { id: 26, name: "I32", blockSize: 1, typeSize: 4 },
  { id: 27, name: "I64", blockSize: 1, typeSize: 8 },
  { id: 28, name: "F64", blockSize: 1, typeSize: 8 },
  { id: 29, name: "IQ1_M", blockSize: 256, typeSize: 56 },
  { id: 30, name: "BF16", blockSize: 1, typeSize: 2 },
  { id: 34, name: "TQ1_0", blockSize: 256, typeSize: 54 },
  { id: 35, name: "TQ2_0", blockSize: 256, typeSize: 66 },
  { id: 39, name: "MXFP4", blockSize: 32, typeSize: 17 },
];

const BY_ID = new Map(TYPES.map((t) => [t.id, t]));
const BY_NAME = new Map(TYPES.map((t) => [t.name, t]));

/** The type with this GGUF id, or undefined for an id ggml does not define. */
export function ggmlType(id: number): GgmlType | undefined {
  return BY_ID.get(id);
}

export function ggmlTypeByName(name: string): GgmlType {
  const t = BY_NAME.get(name);
  if (!t) throw new Error(`unknown ggml type ${name}`);
  return t;
}

/** The types the engine reads (dequantizes, or holds quantized): what `ggml-quants.ts` implements. */
export const SUPPORTED_GGML_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"] as const;
export type SupportedGgmlType = (typeof SUPPORTED_GGML_TYPES)[number];

export function isSupportedGgmlType(name: string): name is SupportedGgmlType {
  return (SUPPORTED_GGML_TYPES as readonly string[]).includes(name);
}

/** Bytes `count` elements of `t` take (count must be a whole number of blocks). */
export function ggmlBytes(t: GgmlType, count: number): number {
  return (count / t.blockSize) * t.typeSize;
}
