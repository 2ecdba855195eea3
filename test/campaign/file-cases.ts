/**
 * Hostile and malformed model and adapter folders, each opened with `excitor score`. Every one
 * must be refused with one line naming the file; a few unusual but valid ones must load.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { copyModel, demoHeaderAndData, editTensors, rawSafetensors, readJson, writeText, DEMO_MODEL } from "./files";
import type { Case } from "./outcome";

const SCORE = ["score", "--text", "Once upon a time", "--json"];

export function modelCases(root: string): Case[] {
  const cases: Case[] = [];
  let n = 0;
  /** A fresh copy of the demo model changed by `edit`, scored. */
  const model = (name: string, expect: Case["expect"], names: Case["names"], edit: (dir: string) => void, timeout?: number) => {
    const dir = path.join(root, `model-${n++}`);
    cases.push({ group: "model files", name, expect, names, args: [...SCORE, "--model", dir], timeout, setup: () => edit(copyModel(dir)) });
  };
  const config = (dir: string) => path.join(dir, "config.json");
  const weights = (dir: string) => path.join(dir, "model.safetensors");

  // config.json as a whole
  for (const [label, text] of [["null", "null"], ["an array", "[]"], ["a string", '"llama"'], ["a number", "42"], ["empty", ""], ["cut short", '{"hidden_size": 1'], ["binary", "\u0000\u0001\u0002"]] as const)
    model(`config.json is ${label}`, "refuse", "config.json", (d) => writeText(config(d), text));
  model("config.json missing", "refuse", "config.json", (d) => fs.rmSync(config(d)));

  // config.json fields
  const fields: [string, unknown][] = [
    ["hidden_size", "128"], ["hidden_size", -128], ["hidden_size", 64], ["hidden_size", 1.5], ["hidden_size", null],
    ["intermediate_size", 0], ["intermediate_size", 100], ["num_hidden_layers", 2], ["num_hidden_layers", 8], ["num_hidden_layers", "4"],
    ["num_attention_heads", 3], ["num_attention_heads", 0], ["num_key_value_heads", 3], ["num_key_value_heads", -2],
    ["head_dim", 31], ["head_dim", 33], ["vocab_size", 900], ["vocab_size", 1e12], ["max_position_embeddings", 1e12], ["max_position_embeddings", -1],
    ["rms_norm_eps", "tiny"], ["rms_norm_eps", -1], ["rope_theta", 0], ["rope_theta", "10000"], ["hidden_act", "gelu"],
    ["architectures", ["GPT2LMHeadModel"]], ["architectures", []], ["architectures", null], ["model_type", "gpt2"], ["model_type", "bert"],
    ["rope_scaling", "fast"], ["rope_scaling", { rope_type: "yarn", factor: 4 }], ["rope_scaling", { type: "linear", factor: -1 }],
  ];
  // A value that contradicts the weights may be reported at either file.
  for (const [key, value] of fields)
    model(`config.json "${key}": ${JSON.stringify(value)}`, "refuse", /config\.json|model\.safetensors|checkpoint/, (d) => writeText(config(d), JSON.stringify({ ...readJson(config(d)), [key]: value })));
  model("config.json with a smaller context (valid)", "accept", undefined, (d) => writeText(config(d), JSON.stringify({ ...readJson(config(d)), max_position_embeddings: 128 })));
  model("config.json with unknown extra keys (valid)", "accept", undefined, (d) => writeText(config(d), JSON.stringify({ ...readJson(config(d)), some_future_key: { a: 1 } })));

  // safetensors framing
  const { header, data } = demoHeaderAndData();
  const names = Object.keys(header);
  const first = names[0];
  const withEntry = (entry: unknown, name = first) => ({ ...header, [name]: entry });
  const raw = (label: string, make: () => { header: unknown; data?: Buffer; length?: bigint }, timeout?: number) =>
    model(`model.safetensors: ${label}`, "refuse", "model.safetensors", (d) => {
      const m = make();
      rawSafetensors(weights(d), m.header, m.data ?? data, m.length);
    }, timeout);
  model("model.safetensors: empty file", "refuse", "model.safetensors", (d) => writeText(weights(d), ""));
  model("model.safetensors: 5 bytes", "refuse", "model.safetensors", (d) => writeText(weights(d), "abcde"));
  raw("header length 0", () => ({ header: "", length: 0n }));
  raw("header length past the end of the file", () => ({ header, length: 1n << 40n }));
  model("model.safetensors: header length 2 GiB in a sparse file", "refuse", "model.safetensors", (d) => {
    const f = weights(d);
    rawSafetensors(f, "", Buffer.alloc(0), 2n ** 31n);
    fs.truncateSync(f, 2 ** 31 + 64);
  }, 30);
  model("model.safetensors: header length 5 GiB in a sparse file", "refuse", "model.safetensors", (d) => {
    const f = weights(d);
    rawSafetensors(f, "", Buffer.alloc(0), 5n * 2n ** 30n);
    fs.truncateSync(f, 5 * 2 ** 30 + 64);
  }, 30);
  raw("header is not JSON", () => ({ header: "{not json" }));
  raw("header is null", () => ({ header: "null" }));
  raw("header is an array", () => ({ header: "[1,2]" }));
  raw("header is a number", () => ({ header: "7" }));
  raw("a tensor entry is null", () => ({ header: withEntry(null) }));
  raw("a tensor entry is a string", () => ({ header: withEntry("F32") }));
  raw("dtype F64", () => ({ header: withEntry({ ...header[first], dtype: "F64" }) }));
  raw("dtype I8", () => ({ header: withEntry({ ...header[first], dtype: "I8" }) }));
  raw("dtype missing", () => ({ header: withEntry({ shape: header[first].shape, data_offsets: header[first].data_offsets }) }));
  raw("shape missing", () => ({ header: withEntry({ dtype: "F32", data_offsets: header[first].data_offsets }) }));
  raw("shape with a negative dimension", () => ({ header: withEntry({ ...header[first], shape: [-header[first].shape[0], header[first].shape[1]] }) }));
  raw("shape with a fractional dimension", () => ({ header: withEntry({ ...header[first], shape: [header[first].shape[0] / 2 + 0.5, header[first].shape[1]] }) }));
  raw("shape is a string", () => ({ header: withEntry({ ...header[first], shape: "913x128" }) }));
  raw("data_offsets missing", () => ({ header: withEntry({ dtype: "F32", shape: header[first].shape }) }));
  raw("negative data_offsets", () => ({ header: withEntry({ ...header[first], data_offsets: [-8, header[first].data_offsets[1] - 8] }) }));
  raw("fractional data_offsets", () => ({ header: withEntry({ ...header[first], data_offsets: [0.5, header[first].data_offsets[1] + 0.5] }) }));
  raw("data_offsets reversed", () => ({ header: withEntry({ ...header[first], data_offsets: [header[first].data_offsets[1], header[first].data_offsets[0]] }) }));
  raw("two tensors overlap", () => {
    const [a, b] = [names[1], names[2]];
    return { header: { ...header, [b]: { ...header[b], data_offsets: [header[a].data_offsets[0], header[a].data_offsets[0] + header[b].data_offsets[1] - header[b].data_offsets[0]] } } };
  });
  raw("a tensor past the end of the file", () => ({ header: withEntry({ ...header[first], data_offsets: [data.length - 4, data.length - 4 + header[first].data_offsets[1] - header[first].data_offsets[0]] }) }));
  raw("truncated file (last 4 KB cut)", () => ({ header, data: data.subarray(0, data.length - 4096) }));
  // The reference implementation reads a null __metadata__ as none.
  model("model.safetensors: __metadata__ is null (valid)", "accept", undefined, (d) => rawSafetensors(weights(d), { __metadata__: null, ...header }, data));
  raw("__metadata__ holds a number", () => ({ header: { __metadata__: { format: 7 }, ...header } }));
  const layer0 = names.find((x) => x.includes("layers.0.self_attn.q_proj"))!;
  for (const [label, value] of [["NaN", NaN], ["+Inf", Infinity], ["-Inf", -Infinity]] as const)
    model(`model.safetensors: ${label} in a weight`, "refuse", layer0, (d) => editTensors(weights(d), (t) => (t[layer0].data[17] = value)));
  model("model.safetensors: an extra tensor the model does not use", "refuse", "model.vision_tower.weight", (d) =>
    editTensors(weights(d), (t) => (t["model.vision_tower.weight"] = { shape: [2, 2], data: new Float32Array(4) })));
  model("model.safetensors: an extra layer", "refuse", /num_hidden_layers|layers/, (d) =>
    editTensors(weights(d), (t) => (t["model.layers.9.mlp.up_proj.weight"] = { shape: [2, 2], data: new Float32Array(4) })));
  model("model.safetensors: a weight missing", "refuse", "model.layers.3.mlp.down_proj.weight", (d) => editTensors(weights(d), (t) => delete t["model.layers.3.mlp.down_proj.weight"]));
  model("model.safetensors: a weight of the wrong shape", "refuse", layer0, (d) => editTensors(weights(d), (t) => (t[layer0] = { shape: [64, 256], data: t[layer0].data })));
  model("model.safetensors in float16 (valid)", "accept", undefined, (d) => {
    const { header: h, data: dd } = demoHeaderAndData();
    const f32 = new Float32Array(dd.buffer.slice(dd.byteOffset, dd.byteOffset + dd.length));
    const f16 = new Uint16Array(f32.length);
    for (let i = 0; i < f32.length; i++) f16[i] = toHalf(f32[i]);
    for (const e of Object.values(h)) {
      e.dtype = "F16";
      e.data_offsets = [e.data_offsets[0] / 2, e.data_offsets[1] / 2];
    }
    rawSafetensors(weights(d), h, Buffer.from(f16.buffer));
  });

  // sharded checkpoints
  const shard = (label: string, expect: Case["expect"], names: Case["names"], make: (d: string) => unknown) =>
    model(`model.safetensors.index.json: ${label}`, expect, names, (d) => {
      const index = make(d);
      fs.renameSync(weights(d), path.join(d, "shard-1.safetensors"));
      writeText(path.join(d, "model.safetensors.index.json"), typeof index === "string" ? index : JSON.stringify(index));
    });
  const mapTo = (file: string) => ({ metadata: {}, weight_map: Object.fromEntries(names.map((x) => [x, file])) });
  shard("valid, one shard (valid)", "accept", undefined, () => mapTo("shard-1.safetensors"));
  shard("a shard in ../ (another folder's weights)", "refuse", "..", (d) => {
    copyModel(path.join(path.dirname(d), "elsewhere"));
    return mapTo("../elsewhere/model.safetensors");
  });
  shard("a shard at /etc/passwd", "refuse", "/etc/passwd", () => mapTo("/etc/passwd"));
  shard("a shard at ../../../../../../etc/passwd", "refuse", "etc/passwd", () => mapTo("../../../../../../etc/passwd"));
  shard("a shard that is a symlink out of the folder", "refuse", "link.safetensors", (d) => {
    fs.symlinkSync(path.join(DEMO_MODEL, "model.safetensors"), path.join(d, "link.safetensors"));
    return mapTo("link.safetensors");
  });
  shard("is null", "refuse", "model.safetensors.index.json", () => "null");
  shard("weight_map is null", "refuse", "model.safetensors.index.json", () => ({ weight_map: null }));
  shard("weight_map is a list", "refuse", "model.safetensors.index.json", () => ({ weight_map: ["shard-1.safetensors"] }));
  shard("a shard name is a number", "refuse", "model.safetensors.index.json", () => ({ weight_map: { ...mapTo("shard-1.safetensors").weight_map, [first]: 7 } }));
  shard("a missing shard", "refuse", "shard-2.safetensors", () => ({ weight_map: { ...mapTo("shard-1.safetensors").weight_map, [first]: "shard-2.safetensors" } }));
  shard("not JSON", "refuse", "model.safetensors.index.json", () => "{weight_map:");

  // tokenizer files
  for (const [label, text] of [["null", "null"], ["not JSON", "{"], ["an empty object", "{}"], ["an array", "[]"]] as const)
    model(`tokenizer.json is ${label}`, "refuse", "tokenizer.json", (d) => writeText(path.join(d, "tokenizer.json"), text));
  model("tokenizer.json missing", "refuse", "tokenizer.json", (d) => fs.rmSync(path.join(d, "tokenizer.json")));
  model("tokenizer.json with an unknown model type", "refuse", "tokenizer.json", (d) => {
    const t = readJson(path.join(d, "tokenizer.json"));
    writeText(path.join(d, "tokenizer.json"), JSON.stringify({ ...t, model: { ...(t.model as object), type: "Magic" } }));
  });
  for (const [label, text] of [["null", "null"], ["not JSON", "{"], ["an array", "[]"]] as const)
    model(`tokenizer_config.json is ${label}`, "refuse", "tokenizer_config.json", (d) => writeText(path.join(d, "tokenizer_config.json"), text));
  model("the model folder is a file", "refuse", undefined, (d) => {
    fs.rmSync(d, { recursive: true });
    writeText(d, "not a folder");
  });
  return cases;
}

/** Adapters that do not belong, do not parse or hold bad numbers, each used with `excitor score`. */
export function adapterCases(root: string, excitorAdapter: string, loraAdapter: string): Case[] {
  const cases: Case[] = [];
  let n = 0;
  const adapter = (from: string, name: string, names: Case["names"], edit: (dir: string) => void) => {
    const dir = path.join(root, `adapter-${n++}`);
    cases.push({
      group: "adapter files",
      name,
      expect: "refuse",
      names,
      args: [...SCORE, "--model", DEMO_MODEL, "--adapter", dir],
      setup: () => {
        fs.cpSync(from, dir, { recursive: true, filter: (src) => !src.includes(`${path.sep}checkpoint`) });
        edit(dir);
      },
    });
  };
  const cfg = (d: string) => path.join(d, "adapter_config.json");
  const st = (d: string) => path.join(d, "adapter_model.safetensors");
  const setKey = (key: string, value: unknown) => (d: string) => writeText(cfg(d), JSON.stringify({ ...readJson(cfg(d)), [key]: value }));
  for (const [kind, from] of [["Excitor", excitorAdapter], ["LoRA", loraAdapter]] as const) {
    for (const [label, text] of [["null", "null"], ["an array", "[]"], ["a string", '"EXCITOR"'], ["not JSON", "{"], ["empty", ""]] as const)
      adapter(from, `${kind}: adapter_config.json is ${label}`, "adapter_config.json", (d) => writeText(cfg(d), text));
    adapter(from, `${kind}: adapter_config.json missing`, "adapter_config.json", (d) => fs.rmSync(cfg(d)));
    adapter(from, `${kind}: peft_type "PROMPT_TUNING"`, "peft_type", setKey("peft_type", "PROMPT_TUNING"));
    adapter(from, `${kind}: peft_type missing`, "adapter_config.json", setKey("peft_type", undefined));
    adapter(from, `${kind}: adapter_model.safetensors missing`, "adapter_model.safetensors", (d) => fs.rmSync(st(d)));
    adapter(from, `${kind}: adapter_model.safetensors truncated`, "adapter_model.safetensors", (d) => fs.truncateSync(st(d), fs.statSync(st(d)).size - 100));
    for (const [label, value] of [["NaN", NaN], ["+Inf", Infinity], ["-Inf", -Infinity]] as const)
      adapter(from, `${kind}: ${label} in a tensor`, "adapter_model.safetensors", (d) =>
        editTensors(st(d), (t) => {
          const name = Object.keys(t).sort()[0];
          t[name].data[0] = value;
        }));
    adapter(from, `${kind}: a tensor missing`, "adapter_model.safetensors", (d) => editTensors(st(d), (t) => delete t[Object.keys(t).sort()[0]]));
    adapter(from, `${kind}: a tensor of the wrong shape`, "adapter_model.safetensors", (d) =>
      editTensors(st(d), (t) => {
        const name = Object.keys(t).sort()[0];
        t[name] = { shape: [t[name].data.length], data: t[name].data };
      }));
    adapter(from, `${kind}: an extra tensor`, "adapter_model.safetensors", (d) => editTensors(st(d), (t) => (t["base_model.model.model.layers.0.self_attn.extra.weight"] = { shape: [1], data: new Float32Array(1) })));
    adapter(from, `${kind}: layers beyond the model's`, undefined, setKey(kind === "Excitor" ? "layers" : "layers_to_transform", [99]));
  }
  for (const [key, value] of [["num_prompts", "30"], ["num_prompts", 0], ["num_prompts", 1e9], ["rank", -16], ["rank", 2.5], ["layers", "all"], ["layers", [-1]], ["layers", null]] as const)
    adapter(excitorAdapter, `Excitor: "${key}": ${JSON.stringify(value)}`, new RegExp(`${key}|adapter_model`), setKey(key, value));
  for (const [key, value] of [["r", "8"], ["r", 0], ["r", 1e9], ["lora_alpha", "x"], ["lora_alpha", -1], ["target_modules", ["embed_tokens"]], ["target_modules", "q_proj"], ["target_modules", null], ["use_dora", true], ["bias", "all"]] as const)
    adapter(loraAdapter, `LoRA: "${key}": ${JSON.stringify(value)}`, key, setKey(key, value));
  return cases;
}

/** float32 → IEEE half (round to nearest even), for the float16 checkpoint case. */
function toHalf(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  let mant = u & 0x7fffff;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    const half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && half & 1) ? 1 : 0));
  }
  if (exp >= 31) return sign | 0x7c00;
  let h = sign | (exp << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return h;
}
