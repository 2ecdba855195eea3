/**
 * A small builder for ONNX graphs (opset 17), encoded with onnx-proto. Values are named by
 * string as in ONNX itself; each op method adds one node and returns its output name, so
 * graph code reads like the math it computes. Nothing here knows about LLaMA.
 */
import { onnx } from "onnx-proto";

export const OPSET = 17;
const { FLOAT, INT32, INT64 } = onnx.TensorProto.DataType;
export type ElemType = "float32" | "int32";
const ELEM: Record<ElemType, number> = { float32: FLOAT, int32: INT32 };

/** A dimension: a fixed size, or a symbolic name ORT resolves per run. */
export type Dim = number | string;

/** Attribute values: integers and integer lists, { f } for a float, { s } for a string. */
type Attr = number | number[] | { f: number } | { s: string };

export class Graph {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private readonly initializers: onnx.ITensorProto[] = [];
  private readonly constants = new Map<string, string>();
  private readonly renamed = new Map<string, string>();
  private count = 0;

  constructor(readonly name: string) {}

  input(name: string, type: ElemType, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, ELEM[type], dims));
    return name;
  }

  /**
   * Exposes `value` as the graph output `name`: the value is renamed where it is made and
   * read (an Identity node would copy it on every run). A graph input exposed as an output,
   * or a value exposed twice, goes through Identity.
   */
  output(value: string, name: string): void {
    const producer = this.nodes.find((n) => n.output?.[0] === value);
    if (!producer || this.outputs.some((o) => o.name === value)) {
      this.nodes.push({ opType: "Identity", input: [value], output: [name], name: `out_${name}` });
    } else {
      producer.output = [name];
      for (const n of this.nodes) n.input = n.input?.map((i) => (i === value ? name : i));
      this.renamed.set(value, name);
    }
    this.outputs.push(valueInfo(name, FLOAT));
  }

  /** The current name of a value (it changes when the value becomes a graph output). */
  ref(value: string): string {
    return this.renamed.get(value) ?? value;
  }

  op(opType: string, inputs: string[], attrs: Record<string, Attr> = {}): string {
    inputs = inputs.map((i) => this.ref(i));
    const out = `${opType.toLowerCase()}_${this.count++}`;
    const attribute = Object.entries(attrs).map(([name, v]) =>
      typeof v === "number"
        ? { name, type: onnx.AttributeProto.AttributeType.INT, i: v }
        : Array.isArray(v)
          ? { name, type: onnx.AttributeProto.AttributeType.INTS, ints: v }
          : "s" in v
            ? { name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(v.s) }
            : { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v.f },
    );
    this.nodes.push({ opType, input: inputs, output: [out], name: out, attribute });
    return out;
  }

  /** A float32 scalar constant (shared by value). */
  scalar(v: number): string {
    return this.constant(`f${v}`, () => ({ dataType: FLOAT, dims: [], floatData: [v] }));
  }

  /** A float32 constant of any shape (row-major values). */
  floatsShaped(v: number[], dims: number[]): string {
    return this.constant(`fv${dims.join("x")}:${v.join("_")}`, () => ({ dataType: FLOAT, dims, floatData: v }));
  }

  /** An int64 vector constant (shapes, axes). */
  ints(v: number[]): string {
    return this.constant(`i${v.join("_")}`, () => ({ dataType: INT64, dims: [v.length], int64Data: v }));
  }

  private constant(key: string, make: () => onnx.ITensorProto): string {
    let name = this.constants.get(key);
    if (!name) {
      name = `const_${this.constants.size}`;
      this.initializers.push({ ...make(), name });
      this.constants.set(key, name);
    }
    return name;
  }

  // Elementwise and shape ops, named as in ONNX.
  add = (a: string, b: string) => this.op("Add", [a, b]);
  sub = (a: string, b: string) => this.op("Sub", [a, b]);
  mul = (a: string, b: string) => this.op("Mul", [a, b]);
  neg = (a: string) => this.op("Neg", [a]);
  sigmoid = (a: string) => this.op("Sigmoid", [a]);
  exp = (a: string) => this.op("Exp", [a]);
  matmul = (a: string, b: string) => this.op("MatMul", [a, b]);
  softmax = (a: string, axis = -1) => this.op("Softmax", [a], { axis });
  logSoftmax = (a: string, axis = -1) => this.op("LogSoftmax", [a], { axis });
  reshape = (a: string, shape: string) => this.op("Reshape", [a, shape]);
  transpose = (a: string, perm: number[]) => this.op("Transpose", [a], { perm });
  concat = (xs: string[], axis: number) => this.op("Concat", xs, { axis });
  /** x[..., start:end] along `axis`. */
  slice = (a: string, axis: number, start: number, end: number) => this.op("Slice", [a, this.ints([start]), this.ints([end]), this.ints([axis])]);
  sum = (a: string, axes: number[], keepdims = true) => this.op("ReduceSum", [a, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
  mean = (a: string, axes: number[]) => this.op("ReduceMean", [a], { axes, keepdims: 1 });
  /** a · b^T (+ nothing), both 2-D: b stays in its stored [out, in] layout. */
  gemmT = (a: string, b: string, alpha = 1) => this.op("Gemm", [a, b], alpha === 1 ? { transB: 1 } : { transB: 1, alpha: { f: alpha } });
  /** alpha · a^T · b, both 2-D. */
  gemmTA = (a: string, b: string, alpha = 1) => this.op("Gemm", [a, b], alpha === 1 ? { transA: 1 } : { transA: 1, alpha: { f: alpha } });
  scale = (a: string, s: number) => this.mul(a, this.scalar(s));

  encode(): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: "excitor",
      opsetImport: [{ domain: "", version: OPSET }],
      graph: { name: this.name, node: this.nodes, input: this.inputs, output: this.outputs, initializer: this.initializers },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function valueInfo(name: string, elemType: number, dims?: Dim[]): onnx.IValueInfoProto {
  const shape = dims && { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) };
  return { name, type: { tensorType: { elemType, shape } } };
}
