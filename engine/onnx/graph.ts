/**
 * A small builder for ONNX graphs (opset 17, or 21 for graphs that dequantize weights with
 * DequantizeLinear's block_size), encoded with onnx-proto. Values are named by string as in ONNX
 * itself; each op method adds one node and returns its output name, so graph code reads like the
 * math it computes. Nothing here knows about LLaMA.
 */
import { onnx } from "onnx-proto";

export const OPSET = 17;
/** The opset of graphs that hold block-quantized weights (DequantizeLinear with block_size). */
export const OPSET_QUANT = 21;
const { FLOAT, INT32, INT64, UINT8 } = onnx.TensorProto.DataType;
export type ElemType = "float32" | "int32" | "uint8";
const ELEM: Record<ElemType, number> = { float32: FLOAT, int32: INT32, uint8: UINT8 };
/** onnxruntime's contrib operators (MatMulNBits). */
const MS_DOMAIN = "com.microsoft";

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
  private usesMs = false;

  constructor(
    readonly name: string,
    readonly opset = OPSET,
  ) {}

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

  /**
   * A weight the session reads from memory handed over at session creation (onnxruntime's
   * in-memory external data, `location` naming the buffer): constant, so kernels may prepack it.
   */
  externalInitializer(name: string, type: ElemType, dims: number[], location: string, byteLength: number): string {
    const externalData = [
      { key: "location", value: location },
      { key: "offset", value: "0" },
      { key: "length", value: String(byteLength) },
    ];
    this.initializers.push({ name, dataType: ELEM[type], dims, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData });
    return name;
  }

  /** An operator of onnxruntime's com.microsoft domain. */
  msOp(opType: string, inputs: string[], attrs: Record<string, Attr> = {}): string {
    this.usesMs = true;
    const out = this.op(opType, inputs, attrs);
    this.nodes[this.nodes.length - 1].domain = MS_DOMAIN;
    return out;
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

  /** A uint8 scalar constant (bit masks and shifts). */
  byte(v: number): string {
    return this.constant(`u${v}`, () => ({ dataType: UINT8, dims: [], rawData: Uint8Array.of(v) }));
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

  /**
   * `t` unchanged, but computed only once `ready` exists (a reshape to its own shape offset by
   * 0·rows(ready); it may copy `t`). onnxruntime runs a node as soon as its inputs exist, and
   * merges nodes with the same inputs: this delays work that reads only graph inputs or early
   * values, and makes a recomputation a node of its own.
   */
  after(t: string, ready: string, dims?: number[]): string {
    const zero = this.mul(this.op("Slice", [this.op("Shape", [ready]), this.ints([0]), this.ints([1])]), this.ints([0])); // [1] int64
    return this.reshape(t, this.add(dims ? this.ints(dims) : this.op("Shape", [t]), zero));
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
  // Opset 18 moved ReduceMean's axes from an attribute to an input.
  mean = (a: string, axes: number[]) => (this.opset >= 18 ? this.op("ReduceMean", [a, this.ints(axes)], { keepdims: 1 }) : this.op("ReduceMean", [a], { axes, keepdims: 1 }));
  /** a · b^T (+ nothing), both 2-D: b stays in its stored [out, in] layout. */
  gemmT = (a: string, b: string, alpha = 1) => this.op("Gemm", [a, b], alpha === 1 ? { transB: 1 } : { transB: 1, alpha: { f: alpha } });
  /** alpha · a^T · b, both 2-D. */
  gemmTA = (a: string, b: string, alpha = 1) => this.op("Gemm", [a, b], alpha === 1 ? { transA: 1 } : { transA: 1, alpha: { f: alpha } });
  scale = (a: string, s: number) => this.mul(a, this.scalar(s));

  encode(): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: this.opset >= 21 ? 10 : 8,
      producerName: "excitor",
      opsetImport: [{ domain: "", version: this.opset }, ...(this.usesMs ? [{ domain: MS_DOMAIN, version: 1 }] : [])],
      graph: { name: this.name, node: this.nodes, input: this.inputs, output: this.outputs, initializer: this.initializers },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function valueInfo(name: string, elemType: number, dims?: Dim[]): onnx.IValueInfoProto {
  const shape = dims && { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) };
  return { name, type: { tensorType: { elemType, shape } } };
}
