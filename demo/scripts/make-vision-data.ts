/**
 * Writes the multimodal demo's data into demo/vision/data (committed): train.jsonl (600
 * questions) and heldout.jsonl (100), Alpaca records with `"image"` naming a PNG under images/
 * (relative to the JSONL file; record N of a file has image N), plus the option word the answer
 * hinges on and the task, as the text demo's records carry them.
 *
 *   npm run build && node dist/demo/scripts/make-vision-data.js
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { writeFileAtomic } from "../../engine/fs-atomic";
import { makeExamples, type VisionExample } from "../vision/questions";
import { SCENE_SIZE } from "../vision/scenes";
import { writePng } from "../vision/png";

export const VISION_DATA_DIR = path.resolve(__dirname, "../../../demo/vision/data");
export const SPLITS = [
  { name: "train", count: 600, seed: 11 },
  { name: "heldout", count: 100, seed: 12 },
] as const;

function writeSplit(name: string, examples: VisionExample[]): void {
  const rows = examples.map(({ record, scene }, i) => {
    const image = `images/${name}-${String(i + 1).padStart(4, "0")}.png`;
    writePng(path.join(VISION_DATA_DIR, image), scene.pixels, SCENE_SIZE, SCENE_SIZE);
    return JSON.stringify({ instruction: record.instruction, input: record.input, output: record.output, image, answer: record.answer, task: record.task });
  });
  writeFileAtomic(path.join(VISION_DATA_DIR, `${name}.jsonl`), rows.join("\n") + "\n");
}

const digest = (px: Uint8Array) => createHash("sha256").update(px).digest("hex");

const images = path.join(VISION_DATA_DIR, "images");
fs.rmSync(images, { recursive: true, force: true }); // a smaller split must not leave old pictures behind
const splits = SPLITS.map((s) => ({ ...s, examples: makeExamples(s.count, s.seed) }));
for (const s of splits) writeSplit(s.name, s.examples);
const seen = new Set(splits[0].examples.map((e) => digest(e.scene.pixels)));
const repeats = splits[1].examples.filter((e) => seen.has(digest(e.scene.pixels))).length;
console.log(`wrote ${VISION_DATA_DIR}: ${splits.map((s) => `${s.examples.length} ${s.name}`).join(", ")}; held-out pictures also in train: ${repeats}`);
