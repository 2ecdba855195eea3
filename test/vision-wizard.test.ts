/**
 * The training wizard with images: a dataset whose first records give `"image"` fields (JSON Lines
 * or a JSON array, Alpaca or chat records) makes it ask for the vision encoder, other datasets do
 * not; a folder that is not a CLIP vision encoder is refused with the file and what is wrong; and
 * the run's command line carries `--vision DIR` (Excitor only; resuming keeps it).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { specFromPreset, trainArgs, withMethod } from "../extension/run-spec";
import { DEFAULT_SETTINGS } from "../extension/settings";
import { datasetHasImages, IMAGE_PROBE_LINES, visionEncoderProblem } from "../extension/vision-preflight";

function scratch(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "excitor-vision-wizard-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const alpaca = (i: number, image?: string) => ({ instruction: `What is in picture ${i}?`, output: "A cat.", ...(image ? { image } : {}) });

test("records with images are found in JSON Lines and JSON arrays, Alpaca and chat alike; text datasets have none", (t) => {
  const dir = scratch(t);
  const write = (name: string, text: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };
  const jsonl = (records: unknown[]) => records.map((r) => JSON.stringify(r)).join("\n") + "\n";
  assert.equal(datasetHasImages(write("alpaca.jsonl", jsonl([alpaca(0, "images/0.png"), alpaca(1, "images/1.jpg")]))), true);
  const chat = { messages: [{ role: "user", content: "<image>\nWhat is this?" }, { role: "assistant", content: "A cat." }], image: "cat.png" };
  assert.equal(datasetHasImages(write("chat.jsonl", jsonl([chat]))), true);
  assert.equal(datasetHasImages(write("pretty.json", JSON.stringify([alpaca(0), alpaca(1, "a.png")], null, 2))), true, "a pretty-printed JSON array");
  assert.equal(datasetHasImages(write("one-line.json", JSON.stringify([alpaca(0, "a.png")]))), true, "a JSON array on one line");
  assert.equal(datasetHasImages(write("bom.jsonl", "\uFEFF" + jsonl([alpaca(0, "a.png")]))), true);
  // Some records without an image (text-only examples mixed in) still make a multimodal dataset.
  assert.equal(datasetHasImages(write("mixed.jsonl", jsonl([alpaca(0), alpaca(1), alpaca(2, "2.png")]))), true);

  assert.equal(datasetHasImages(write("text.jsonl", jsonl([alpaca(0), alpaca(1)]))), false);
  assert.equal(datasetHasImages(write("text.json", JSON.stringify([alpaca(0)], null, 2))), false);
  // The word "image" in the text is not an image field.
  assert.equal(datasetHasImages(write("words.jsonl", jsonl([{ instruction: 'Describe an "image": it is a word here', output: "ok" }]))), false);
  assert.equal(datasetHasImages(write("empty-image.jsonl", jsonl([{ ...alpaca(0), image: "" }]))), false, "an empty image path is no image");
  assert.equal(datasetHasImages(path.join(dir, "missing.jsonl")), false, "a missing file: the dataset check says why");
  // Only the first lines are read: a huge file costs no more than its start.
  const late = [...Array.from({ length: IMAGE_PROBE_LINES }, (_, i) => alpaca(i)), alpaca(99, "late.png")];
  assert.equal(datasetHasImages(write("late.jsonl", jsonl(late))), false);
});

test("the vision encoder must be a CLIP vision folder: config.json (clip_vision_model, or clip with a vision_config) and preprocessor_config.json", (t) => {
  const dir = scratch(t);
  const encoder = (name: string, files: Record<string, unknown>) => {
    const d = path.join(dir, name);
    fs.mkdirSync(d);
    for (const [f, v] of Object.entries(files)) fs.writeFileSync(path.join(d, f), typeof v === "string" ? v : JSON.stringify(v));
    return d;
  };
  const pre = { crop_size: 224, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] };
  assert.equal(visionEncoderProblem(encoder("vision", { "config.json": { model_type: "clip_vision_model", hidden_size: 32 }, "preprocessor_config.json": pre })), undefined);
  assert.equal(visionEncoderProblem(encoder("clip", { "config.json": { model_type: "clip", vision_config: { hidden_size: 32 } }, "preprocessor_config.json": pre })), undefined);

  const noPre = encoder("no-pre", { "config.json": { model_type: "clip_vision_model" } });
  assert.equal(visionEncoderProblem(noPre), `${path.join(noPre, "preprocessor_config.json")}: not found; the vision encoder is a CLIP vision encoder folder (config.json, preprocessor_config.json, *.safetensors)`);
  const llama = encoder("llama", { "config.json": { model_type: "llama" }, "preprocessor_config.json": pre });
  assert.equal(visionEncoderProblem(llama), `${path.join(llama, "config.json")}: "model_type" is "llama", expected "clip_vision_model" (or "clip" with a vision_config)`);
  const textClip = encoder("text-clip", { "config.json": { model_type: "clip" }, "preprocessor_config.json": pre });
  assert.match(visionEncoderProblem(textClip)!, /config\.json: "vision_config" is missing/);
  const broken = encoder("broken", { "config.json": "{ not json", "preprocessor_config.json": pre });
  assert.match(visionEncoderProblem(broken)!, /config\.json: not valid JSON/);
  const file = path.join(dir, "model.safetensors");
  fs.writeFileSync(file, "");
  assert.match(visionEncoderProblem(file)!, /model\.safetensors: not a folder/);
  for (const why of [visionEncoderProblem(noPre), visionEncoderProblem(llama), visionEncoderProblem(broken)]) assert.ok(!why!.includes("\n"), "one line");
});

test("a multimodal run passes --vision DIR to excitor train, resumed too; text runs and other methods do not", () => {
  const text = specFromPreset("quick", "/m", "/d.jsonl", DEFAULT_SETTINGS.train, 760);
  const spec = { ...text, vision: "/encoders/clip" };
  const args = trainArgs(spec, "/out", false, "auto");
  const at = args.indexOf("--vision");
  assert.ok(at > args.indexOf("train"), `--vision is an option of train (${args.join(" ")})`);
  assert.equal(args[at + 1], "/encoders/clip");
  assert.equal(trainArgs(spec, "/out", true, "auto").filter((a) => a === "--vision").length, 1, "resume keeps it");
  assert.ok(!trainArgs(text, "/out", false, "auto").includes("--vision"));
  // The image features reach the model through Excitor's prompts: switching method lets the encoder go.
  assert.equal(withMethod(spec, "lora").vision, undefined);
  assert.ok(!trainArgs(withMethod(spec, "lora"), "/out", false, "auto").includes("--vision"));
  assert.ok(!trainArgs({ ...spec, method: "full" }, "/out", false, "auto").includes("--vision"));
  assert.equal(withMethod(spec, "excitor").vision, "/encoders/clip");
});
