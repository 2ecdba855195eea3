/**
 * The frozen CLIP image encoder: features against an independent implementation
 * (test/fixtures/golden/vision) on both engines, image decoding, CLIPImageProcessor's
 * preprocessing against Pillow (test/fixtures/images), config errors and the feature cache.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { PNG } from "pngjs";
import jpeg from "jpeg-js";
import { ExcitorInputError } from "../engine/errors";
import { readHeader, readTensorF32, writeSafetensors, type F32Tensor } from "../engine/formats/safetensors";
import { parsePreprocessConfig, parseVisionConfig, type PreprocessConfig } from "../engine/vision/config";
import { VisionEncoder, type VisionEngine } from "../engine/vision/encoder";
import { decodeImage, readImage, type RgbImage } from "../engine/vision/image";
import { bicubic, centerCrop, preprocess, resizeAndCrop, resizeBicubic, resizeTarget } from "../engine/vision/preprocess";
import { FIXTURES } from "./fixtures";
import { maxAbsDiff } from "./helpers/compare";
import { rewriteAsHalf } from "./helpers/half-weights";
import { tempDir } from "./helpers/tiny-model";

const GOLDEN = path.join(FIXTURES, "golden", "vision");
const ENCODER = path.join(GOLDEN, "encoder");
const IMAGES = path.join(FIXTURES, "images");
const ENGINES: VisionEngine[] = ["onnxruntime", "tfjs"];
const expectedFeatures = (): number[] => JSON.parse(fs.readFileSync(path.join(GOLDEN, "expected-features.json"), "utf8")).features.flat();

/** A copy of the golden encoder folder to break. */
function encoderCopy(): string {
  const dir = path.join(tempDir(), "encoder");
  fs.cpSync(ENCODER, dir, { recursive: true });
  return dir;
}

const editJson = (file: string, edit: (j: Record<string, unknown>) => void) => {
  const j = JSON.parse(fs.readFileSync(file, "utf8"));
  edit(j);
  fs.writeFileSync(file, JSON.stringify(j));
};

/** Rewrites the encoder's weights through `edit` (F32). */
function editWeights(dir: string, edit: (t: Record<string, F32Tensor>) => Record<string, F32Tensor>): void {
  const file = path.join(dir, "model.safetensors");
  const h = readHeader(file);
  const tensors: Record<string, F32Tensor> = {};
  for (const name of Object.keys(h.tensors)) tensors[name] = readTensorF32(h, name);
  writeSafetensors(file, edit(tensors));
}

async function refusal(p: Promise<unknown> | (() => unknown), pattern: RegExp): Promise<void> {
  await assert.rejects(async () => (typeof p === "function" ? p() : await p), (e: unknown) => {
    assert.ok(e instanceof ExcitorInputError, `expected an input error, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n"), "one line");
    return true;
  });
}

// ---- the encoder against the reference ----

for (const engine of ENGINES) {
  test(`golden vision on ${engine}: the features of image.png match the reference within 1e-4`, async () => {
    const enc = await VisionEncoder.load(ENCODER, { engine });
    assert.deepEqual([enc.numTokens, enc.hiddenSize, enc.grid, enc.imageSize], [17, 48, 4, 32]);
    const f = await enc.featuresOf([path.join(GOLDEN, "image.png")]);
    assert.equal(f.length, 17 * 48);
    assert.ok(maxAbsDiff(f, expectedFeatures()) < 1e-4);
    enc.dispose();
  });
}

test("both engines agree on a batch of different images, at feature layer -2 and with erf gelu", async () => {
  const dir = encoderCopy();
  editJson(path.join(dir, "config.json"), (j) => (j.hidden_act = "gelu"));
  const files = [path.join(GOLDEN, "image.png"), path.join(IMAGES, "random-23x17.png"), path.join(IMAGES, "progressive.jpg")];
  const out: Float32Array[] = [];
  for (const engine of ENGINES) {
    const enc = await VisionEncoder.load(dir, { engine, featureLayer: -2 });
    out.push(await enc.featuresOf(files));
    assert.equal(enc.encoderRuns, 1, "one encoder run for the batch");
    enc.dispose();
  }
  assert.ok(maxAbsDiff(out[0], out[1]) < 1e-4);
  // Layer -2 is not layer -1, and gelu is not quick_gelu: the golden features differ.
  assert.ok(maxAbsDiff(out[0].subarray(0, 17 * 48), expectedFeatures()) > 1e-2);
  // Rows are per image: the first equals the image alone.
  const alone = await VisionEncoder.load(dir, { engine: "onnxruntime", featureLayer: -2 });
  assert.ok(maxAbsDiff(await alone.featuresOf([files[1]]), out[0].subarray(17 * 48, 2 * 17 * 48)) < 1e-5);
  alone.dispose();
});

test("a CLIPModel folder (model_type clip, vision_config, text tower beside it, sharded) gives the same features", async () => {
  const dir = encoderCopy();
  const vision = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ architectures: ["CLIPModel"], model_type: "clip", vision_config: vision, text_config: {} }));
  editWeights(dir, (t) => ({ ...t, "text_model.embeddings.token_embedding.weight": { shape: [3, 2], data: new Float32Array(6) }, "logit_scale": { shape: [], data: new Float32Array(1) } }));
  fs.renameSync(path.join(dir, "model.safetensors"), path.join(dir, "model-00001-of-00001.safetensors"));
  const names = Object.keys(readHeader(path.join(dir, "model-00001-of-00001.safetensors")).tensors);
  fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: Object.fromEntries(names.map((n) => [n, "model-00001-of-00001.safetensors"])) }));
  const enc = await VisionEncoder.load(dir, { engine: "onnxruntime" });
  assert.ok(maxAbsDiff(await enc.featuresOf([path.join(GOLDEN, "image.png")]), expectedFeatures()) < 1e-4);
  enc.dispose();
});

for (const dtype of ["F16", "BF16"] as const) {
  test(`${dtype} encoder weights load and compute in float32: the same features as their F32 twin`, async () => {
    const dir = encoderCopy();
    const twin = path.join(path.dirname(dir), "twin");
    rewriteAsHalf(dir, dtype, twin);
    assert.equal(Object.values(readHeader(path.join(dir, "model.safetensors")).tensors)[0].dtype, dtype);
    for (const engine of ENGINES) {
      const a = await VisionEncoder.load(dir, { engine });
      const b = await VisionEncoder.load(twin, { engine });
      const img = [path.join(GOLDEN, "image.png")];
      assert.deepEqual(Array.from(await a.featuresOf(img)), Array.from(await b.featuresOf(img)));
      a.dispose();
      b.dispose();
    }
  });
}

// ---- the cache ----

test("featuresOf encodes each image once: a second pass (an epoch) runs the encoder zero times", async () => {
  const root = tempDir();
  const a = path.join(root, "a.png");
  const b = path.join(root, "b.png");
  fs.copyFileSync(path.join(GOLDEN, "image.png"), a);
  fs.copyFileSync(path.join(IMAGES, "random-23x17.png"), b);
  const enc = await VisionEncoder.load(ENCODER, { engine: "onnxruntime" });
  const first = await enc.featuresOf([a, b, a]);
  assert.deepEqual([enc.encoderRuns, enc.imagesEncoded], [1, 2], "a repeated file is encoded once");
  const again = await enc.featuresOf([b, a]);
  assert.deepEqual([enc.encoderRuns, enc.imagesEncoded], [1, 2], "nothing encoded the second time");
  const per = 17 * 48;
  assert.deepEqual(Array.from(again.subarray(0, per)), Array.from(first.subarray(per, 2 * per)));
  assert.deepEqual(Array.from(again.subarray(per)), Array.from(first.subarray(0, per)));
  assert.deepEqual(Array.from(first.subarray(2 * per)), Array.from(first.subarray(0, per)));
  // Via another spelling of the same path: still cached.
  await enc.featuresOf([path.join(root, ".", "a.png")]);
  assert.equal(enc.encoderRuns, 1);
  // A file changed on disk is encoded again, alone.
  fs.copyFileSync(path.join(IMAGES, "interlaced.png"), a);
  fs.utimesSync(a, new Date(), new Date(Date.now() + 5000));
  const changed = await enc.featuresOf([a, b]);
  assert.deepEqual([enc.encoderRuns, enc.imagesEncoded], [2, 3]);
  assert.ok(maxAbsDiff(changed.subarray(0, per), first.subarray(0, per)) > 1e-3);
  enc.dispose();
});

test("cropPng is the S×S picture the encoder sees", async () => {
  const enc = await VisionEncoder.load(ENCODER, { engine: "tfjs" });
  const file = path.join(IMAGES, "random-23x17.png");
  const png = PNG.sync.read(enc.cropPng(file));
  assert.deepEqual([png.width, png.height], [32, 32]);
  const want = resizeAndCrop(readImage(file), enc.preprocessConfig);
  const rgb = Uint8Array.from({ length: 32 * 32 * 3 }, (_, i) => png.data[Math.floor(i / 3) * 4 + (i % 3)]);
  assert.deepEqual(rgb, want.data);
  enc.dispose();
});

test("encode refuses pixels that are not [B, 3, S, S]", async () => {
  const enc = await VisionEncoder.load(ENCODER, { engine: "onnxruntime" });
  await assert.rejects(enc.encode(new Float32Array(32 * 32 * 4), 1), /4096 values for 1 image; the encoder takes \[B, 3, 32, 32\] = 3072/);
  await assert.rejects(enc.encode(new Float32Array(3 * 32 * 32), 2), /3072 values for 2 images/);
  assert.equal((await enc.encode(new Float32Array(2 * 3 * 32 * 32), 2)).length, 2 * 17 * 48);
  enc.dispose();
});

// ---- configuration errors ----

test("encoder folders that are wrong are refused with one line naming the file and field", async () => {
  const load = (dir: string, featureLayer?: number) => VisionEncoder.load(dir, { engine: "onnxruntime", featureLayer });
  const cases: [string, (dir: string) => void, RegExp, number?][] = [
    ["not CLIP", (d) => editJson(path.join(d, "config.json"), (j) => (j.model_type = "llama")), /config\.json: "model_type" is "llama"; an image encoder must be a CLIP vision tower/],
    ["clip without vision_config", (d) => editJson(path.join(d, "config.json"), (j) => (j.model_type = "clip")), /config\.json: "vision_config" is missing/],
    ["tanh gelu", (d) => editJson(path.join(d, "config.json"), (j) => (j.hidden_act = "gelu_new")), /config\.json: "hidden_act" is "gelu_new"; supported: quick_gelu, gelu/],
    ["bad patch size", (d) => editJson(path.join(d, "config.json"), (j) => (j.patch_size = 5)), /"patch_size" \(5\) must divide image_size \(32\)/],
    ["bad heads", (d) => editJson(path.join(d, "config.json"), (j) => (j.num_attention_heads = 5)), /"num_attention_heads" \(5\) must divide hidden_size \(48\)/],
    ["string layers", (d) => editJson(path.join(d, "config.json"), (j) => (j.num_hidden_layers = "2")), /"num_hidden_layers" must be a positive integer \(got "2"\)/],
    ["crop not S", (d) => editJson(path.join(d, "preprocessor_config.json"), (j) => (j.crop_size = 30)), /preprocessor_config\.json: "crop_size" is 30x30, but the encoder \(config\.json "image_size"\) takes 32x32/],
    ["mean of two", (d) => editJson(path.join(d, "preprocessor_config.json"), (j) => (j.image_mean = [0.5, 0.5])), /preprocessor_config\.json: "image_mean" must be a list of 3 numbers/],
    ["std zero", (d) => editJson(path.join(d, "preprocessor_config.json"), (j) => (j.image_std = [1, 0, 1])), /"image_std" must be a list of 3 non-zero numbers/],
    ["bilinear", (d) => editJson(path.join(d, "preprocessor_config.json"), (j) => (j.resample = 2)), /"resample" is 2; only bicubic \(3\)/],
    ["size string", (d) => editJson(path.join(d, "preprocessor_config.json"), (j) => (j.size = "big")), /"size" must be an integer, \{"shortest_edge": N\}/],
    ["shortest edge zero", (d) => editJson(path.join(d, "preprocessor_config.json"), (j) => (j.size = { shortest_edge: 0 })), /"size\.shortest_edge" must be a positive integer \(got 0\)/],
    ["do_resize string", (d) => editJson(path.join(d, "preprocessor_config.json"), (j) => (j.do_resize = "yes")), /"do_resize" must be true or false/],
    ["no preprocessor", (d) => fs.rmSync(path.join(d, "preprocessor_config.json")), /preprocessor_config\.json: not found/],
    ["no weights", (d) => fs.rmSync(path.join(d, "model.safetensors")), /no model\.safetensors or model\.safetensors\.index\.json/],
    [
      "missing tensor",
      (d) => editWeights(d, (t) => Object.fromEntries(Object.entries(t).filter(([n]) => n !== "vision_model.encoder.layers.1.mlp.fc2.bias"))),
      /model\.safetensors: tensor "vision_model\.encoder\.layers\.1\.mlp\.fc2\.bias" is missing/,
    ],
    [
      "wrong shape",
      (d) => editWeights(d, (t) => ({ ...t, "vision_model.pre_layrnorm.weight": { shape: [47], data: new Float32Array(47) } })),
      /model\.safetensors: tensor vision_model\.pre_layrnorm\.weight has shape \[47\], but config\.json implies \[48\]/,
    ],
    ["feature layer 0", () => undefined, /feature_layer is 0; the image encoder in .* has 2 layers, so it must be -1 \(the last layer\) to -2/, 0],
    ["feature layer -3", () => undefined, /feature_layer is -3/, -3],
    ["feature layer 1.5", () => undefined, /feature_layer is 1\.5/, 1.5],
  ];
  for (const [name, breakIt, pattern, featureLayer] of cases) {
    const dir = encoderCopy();
    breakIt(dir);
    await refusal(load(dir, featureLayer), pattern).catch((e) => assert.fail(`${name}: ${(e as Error).message}`));
  }
  await refusal(load(path.join(tempDir(), "nope")), /image encoder folder not found/);
});

test("config defaults follow transformers: CLIPVisionConfig and CLIPImageProcessor", () => {
  const c = parseVisionConfig({ model_type: "clip_vision_model" });
  assert.deepEqual(c, { hiddenSize: 768, intermediateSize: 3072, numLayers: 12, numHeads: 12, headDim: 64, patchSize: 32, imageSize: 224, numChannels: 3, hiddenAct: "quick_gelu", layerNormEps: 1e-5 });
  const p = parsePreprocessConfig({ size: 336, crop_size: 336 });
  assert.deepEqual(p.size, { shortestEdge: 336 });
  assert.deepEqual(p.crop, { height: 336, width: 336 });
  assert.equal(p.rescaleFactor, 1 / 255);
  assert.deepEqual([p.doResize, p.doCenterCrop, p.doRescale, p.doNormalize, p.doConvertRgb], [true, true, true, true, true]);
  assert.deepEqual(p.imageMean, [0.48145466, 0.4578275, 0.40821073]);
});

// ---- decoding ----

const F = (name: string) => path.join(IMAGES, name);
const px = (img: RgbImage, x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));
const near = (got: number[], want: number[], tol: number, what: string) => assert.ok(got.every((v, i) => Math.abs(v - want[i]) <= tol), `${what}: got [${got}], want [${want}]`);

/** A PNG written by pngjs in its own colour type and depth. */
function pngFile(name: string, width: number, height: number, colorType: 0 | 2 | 4 | 6, samples: number[], bitDepth: 8 | 16 = 8): string {
  const file = path.join(tempDir(), name);
  const data = bitDepth === 16 ? new Uint8Array(Uint16Array.from(samples).buffer) : Uint8Array.from(samples); // pngjs takes 16-bit samples in host order
  fs.writeFileSync(file, PNG.sync.write({ width, height, data }, { colorType, inputColorType: colorType, inputHasAlpha: colorType >= 4, bitDepth }));
  return file;
}

test("PNG colour types decode to RGB, transparency composited on white as PIL does", () => {
  const grey = readImage(pngFile("g.png", 2, 1, 0, [10, 200]));
  assert.deepEqual(Array.from(grey.data), [10, 10, 10, 200, 200, 200]);
  const greyAlpha = readImage(pngFile("ga.png", 3, 1, 4, [10, 255, 10, 0, 100, 128]));
  assert.deepEqual(Array.from(greyAlpha.data), [10, 10, 10, 255, 255, 255, 177, 177, 177]); // 100·128/255 + 255·127/255, PIL's rounding
  const rgba = readImage(pngFile("rgba.png", 1, 1, 6, [255, 0, 40, 128]));
  assert.deepEqual(Array.from(rgba.data), [255, 127, 147]);
  const sixteen = readImage(pngFile("16.png", 2, 1, 2, [65535, 0, 32896, 257, 514, 771], 16));
  assert.deepEqual(Array.from(sixteen.data), [255, 0, 128, 1, 2, 3]);
  // Against Pillow + transformers' convert_to_rgb (random RGBA, fully transparent and opaque pixels included).
  const expected = JSON.parse(fs.readFileSync(F("pillow-expected.json"), "utf8"));
  assert.deepEqual(Array.from(readImage(F("random-rgba-6x5.png")).data), expected.rgb["random-rgba-6x5.png"]);
  // Palette with a transparent entry; Adam7-interlaced truecolor.
  const pal = readImage(F("palette-trns.png"));
  assert.deepEqual([px(pal, 0, 0), px(pal, 15, 0), px(pal, 0, 15), px(pal, 15, 15)], [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]);
  const inter = readImage(F("interlaced.png"));
  for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) assert.deepEqual(px(inter, x, y), [16 * x, 16 * y, (x * y) % 256]);
  // Bytes after IEND are ignored, as PIL ignores them.
  const trailing = path.join(tempDir(), "trailing.png");
  fs.writeFileSync(trailing, Buffer.concat([fs.readFileSync(F("interlaced.png")), Buffer.from("appended by some tool")]));
  assert.deepEqual(readImage(trailing), inter);
});

test("JPEG: baseline, progressive, greyscale, CMYK and YCCK (Adobe) decode to RGB", () => {
  const quadrants = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]];
  const corners = (img: RgbImage) => [px(img, 3, 3), px(img, 12, 3), px(img, 3, 12), px(img, 12, 12)];
  for (const f of ["progressive.jpg", "cmyk.jpg", "ycck.jpg"]) {
    const img = readImage(F(f));
    assert.deepEqual([img.width, img.height], [16, 16]);
    corners(img).forEach((got, i) => near(got, quadrants[i], 3, `${f} quadrant ${i}`));
  }
  // Greyscale: ImageMagick's luma of red, green, blue, white, repeated over the channels.
  corners(readImage(F("grey.jpg"))).forEach((got, i) => near(got, Array(3).fill([54, 182, 18, 255][i]), 2, `grey quadrant ${i}`));
  // Baseline, written by jpeg-js itself.
  const file = path.join(tempDir(), "base.jpg");
  const rgba = Buffer.alloc(16 * 16 * 4, 255);
  for (let i = 0; i < 256; i++) rgba.set([200, 100, 50, 255], i * 4);
  fs.writeFileSync(file, jpeg.encode({ width: 16, height: 16, data: rgba }, 100).data);
  near(px(readImage(file), 7, 7), [200, 100, 50], 3, "baseline");
});

test("files that are not a supported image are refused with one line naming the file", async () => {
  const root = tempDir();
  const write = (name: string, bytes: Buffer) => {
    const f = path.join(root, name);
    fs.writeFileSync(f, bytes);
    return f;
  };
  const png = fs.readFileSync(path.join(GOLDEN, "image.png"));
  const jpg = fs.readFileSync(F("progressive.jpg"));
  /** A PNG signature and IHDR claiming w×h, then nothing: the size check must come before any decoding. */
  const pngHeader = (w: number, h: number) => {
    const b = Buffer.alloc(33);
    png.copy(b, 0, 0, 12);
    b.write("IHDR", 12, "latin1");
    b.writeUInt32BE(w, 16);
    b.writeUInt32BE(h, 20);
    return b;
  };
  const jpegHeader = (w: number, h: number) => Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0, 17, 8, h >> 8, h & 255, w >> 8, w & 255, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]);
  const cases: [string, RegExp][] = [
    [write("notes.txt", Buffer.from("hello, not an image\n")), /notes\.txt: not a PNG or JPEG image$/],
    [write("empty.png", Buffer.alloc(0)), /empty\.png: not a PNG or JPEG image \(the file is empty\)/],
    [write("anim.png", Buffer.from("GIF89a\x01\x00\x01\x00", "latin1")), /anim\.png: is a GIF image; supported image formats: PNG, JPEG/],
    [write("pic.webp", Buffer.from("RIFF\0\0\0\0WEBPVP8 ", "latin1")), /is a WebP image/],
    [write("cut.png", png.subarray(0, png.length - 40)), /cut\.png: not a readable PNG image \(the file is truncated inside its IDAT chunk\)/],
    [write("noend.png", png.subarray(0, png.length - 12)), /noend\.png: not a readable PNG image \(the file is truncated\)/],
    [write("head.png", png.subarray(0, 20)), /head\.png: not a readable PNG image \(the header is truncated/],
    [write("crc.png" /* IHDR checksum */, Buffer.concat([png.subarray(0, 30), Buffer.from([png[30] ^ 0xff]), png.subarray(31)])), /crc\.png: not a readable PNG image \(the IHDR chunk at byte 8 fails its CRC check: the file is corrupt\)/],
    [write("cut.jpg", jpg.subarray(0, Math.floor(jpg.length / 2))), /cut\.jpg: not a readable JPEG image \(the file is truncated: it has no end-of-image marker\)/],
    [write("head.jpg", jpg.subarray(0, 6)), /head\.jpg: not a readable JPEG image \(no frame header/],
    [F("arithmetic.jpg"), /arithmetic\.jpg: is an arithmetic-coded JPEG, which is not supported/],
    [write("huge.png", pngHeader(20000, 20000)), /huge\.png: the image is 20000x20000 pixels \(400 megapixels\), over the 100-megapixel limit/],
    [write("huge.jpg", jpegHeader(65000, 65000)), /huge\.jpg: the image is 65000x65000 pixels/],
    [write("zero.png", pngHeader(0, 5)), /zero\.png: the image header says 0x5 pixels/],
    [path.join(root, "absent.png"), /absent\.png: image not found/],
  ];
  for (const [file, pattern] of cases) await refusal(() => readImage(file), pattern);
  // The encoder refuses them the same way.
  const enc = await VisionEncoder.load(ENCODER, { engine: "onnxruntime" });
  await refusal(enc.featuresOf([path.join(GOLDEN, "image.png"), path.join(root, "notes.txt")]), /notes\.txt: not a PNG or JPEG image/);
  await refusal(enc.featuresOf([root]), /is not a file/);
  assert.equal(enc.encoderRuns, 0);
  enc.dispose();
  assert.throws(() => decodeImage(Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0, 17, 12, 0, 8, 0, 8, 3]), "twelve.jpg"), /twelve\.jpg: is a 12-bit JPEG/);
});

// ---- preprocessing ----

const uniform = (width: number, height: number, rgb: number[]): RgbImage => ({ width, height, data: Uint8Array.from({ length: width * height * 3 }, (_, i) => rgb[i % 3]) });

test("the bicubic resampler matches Pillow byte for byte (down, up, one axis)", () => {
  const expected = JSON.parse(fs.readFileSync(F("pillow-expected.json"), "utf8"));
  for (const [what, want] of Object.entries(expected.resize) as [string, { width: number; height: number; data: number[] }][]) {
    const got = resizeBicubic(readImage(F(what.split(" ")[0])), want.width, want.height);
    assert.deepEqual(Array.from(got.data), want.data, what);
  }
});

test("the bicubic resampler, derived independently: constants stay constant, a 1-D case by the formula", () => {
  for (const [w, h] of [[5, 3], [40, 7], [16, 16]]) {
    const out = resizeBicubic(uniform(11, 6, [0, 128, 255]), w, h);
    assert.ok(out.data.every((v, i) => v === [0, 128, 255][i % 3]), `constant ${w}x${h}`);
  }
  // A row of 4 -> 2 (shrinking by 2: the kernel is stretched to support 4, as PIL antialiases).
  // Output pixel o has centre (o + 0.5)·2 and weights bicubic((x + 0.5 − centre) / 2) over every x, normalised.
  const row = [0, 100, 200, 40];
  const ref = [0, 1].map((o) => {
    const c = (o + 0.5) * 2;
    const w = row.map((_, x) => bicubic((x + 0.5 - c) / 2));
    const s = w.reduce((a, b) => a + b, 0);
    return Math.min(255, Math.max(0, Math.round(row.reduce((a, v, x) => a + (v * w[x]) / s, 0))));
  });
  const img: RgbImage = { width: 4, height: 1, data: Uint8Array.from(row.flatMap((v) => [v, v, v])) };
  const got = resizeBicubic(img, 2, 1);
  assert.deepEqual([got.data[0], got.data[3]], ref);
  // By hand for o = 0: weights (0.8672, 0.8672, 0.2266, −0.0703) / 1.8906 -> (86.72 + 45.31 − 2.81) / 1.8906 = 68.3.
  assert.deepEqual(ref, [68, 122]);
  // An image already at the target size comes back untouched.
  const same = uniform(4, 3, [1, 2, 3]);
  assert.equal(resizeBicubic(same, 4, 3), same);
});

test("resize target and center crop follow transformers (int() of the long side, floor offsets, zero padding)", () => {
  assert.deepEqual(resizeTarget(17, 23, { shortestEdge: 8 }), [8, 10]); // 8·23/17 = 10.8 -> 10
  assert.deepEqual(resizeTarget(640, 480, { shortestEdge: 224 }), [298, 224]);
  assert.deepEqual(resizeTarget(50, 50, { shortestEdge: 224 }), [224, 224]);
  assert.deepEqual(resizeTarget(50, 70, { height: 3, width: 4 }), [3, 4]);
  // 5x3 cropped to 2x2: top = (3 − 2) // 2 = 0, left = (5 − 2) // 2 = 1.
  const img: RgbImage = { width: 5, height: 3, data: Uint8Array.from({ length: 45 }, (_, i) => Math.floor(i / 3)) };
  assert.deepEqual(Array.from(centerCrop(img, 2, 2).data), [1, 1, 1, 2, 2, 2, 6, 6, 6, 7, 7, 7]);
  // 2x1 into 4x4: padded; top = (1 − 4) // 2 = −2, left = −1, so the image lands at row 2, columns 1..2.
  const small: RgbImage = { width: 2, height: 1, data: Uint8Array.from([9, 9, 9, 8, 8, 8]) };
  const padded = centerCrop(small, 4, 4);
  const want = new Uint8Array(48);
  want.set([9, 9, 9, 8, 8, 8], (2 * 4 + 1) * 3);
  assert.deepEqual(padded.data, want);
});

test("preprocess matches CLIPImageProcessor (Pillow resize, crop, float32 rescale and normalise) exactly", () => {
  const expected = JSON.parse(fs.readFileSync(F("pillow-expected.json"), "utf8")).clip["random-23x17.png"];
  const p: PreprocessConfig = parsePreprocessConfig({ size: { shortest_edge: expected.shortest_edge }, crop_size: expected.crop });
  const got = preprocess(readImage(F("random-23x17.png")), p);
  assert.deepEqual(Array.from(got), expected.pixels);
  // Without rescale and normalise: the 8-bit values, channels first.
  const raw = preprocess(uniform(2, 2, [3, 4, 5]), parsePreprocessConfig({ do_resize: false, do_center_crop: false, do_rescale: false, do_normalize: false }));
  assert.deepEqual(Array.from(raw), [3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5]);
});

test("an image that preprocessing leaves at the wrong size (no center crop) is refused naming it", async () => {
  const dir = encoderCopy();
  editJson(path.join(dir, "preprocessor_config.json"), (j) => (j.do_center_crop = false));
  const enc = await VisionEncoder.load(dir, { engine: "onnxruntime" });
  await refusal(enc.featuresOf([F("random-23x17.png")]), /random-23x17\.png: preprocessed to 43x32 pixels \(by .*preprocessor_config\.json, which has no center crop\), but the encoder takes 32x32/);
  // A square image fits.
  assert.ok(maxAbsDiff(await enc.featuresOf([path.join(GOLDEN, "image.png")]), expectedFeatures()) < 1e-4);
  enc.dispose();
});
