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
import { imagePath, makeExamples, recordLine, VISION_SPLITS, type VisionExample } from "../vision/questions";
import { encodePng } from "../../engine/vision/image";
import { SCENE_SIZE } from "../vision/scenes";

const VISION_DATA_DIR = path.resolve(__dirname, "../../../demo/vision/data");

function writeSplit(name: string, examples: VisionExample[]): void {
  const rows = examples.map(({ record, scene }, i) => {
    const image = imagePath(name, i);
    writeFileAtomic(path.join(VISION_DATA_DIR, image), encodePng({ width: SCENE_SIZE, height: SCENE_SIZE, data: scene.pixels }));
    return recordLine(record, image);
  });
  writeFileAtomic(path.join(VISION_DATA_DIR, `${name}.jsonl`), rows.join("\n") + "\n");
}

const digest = (px: Uint8Array) => createHash("sha256").update(px).digest("hex");

const images = path.join(VISION_DATA_DIR, "images");
fs.rmSync(images, { recursive: true, force: true }); // a smaller split must not leave old pictures behind
const splits = VISION_SPLITS.map((s) => ({ ...s, examples: makeExamples(s.count, s.seed) }));
for (const s of splits) writeSplit(s.name, s.examples);
const seen = new Set(splits[0].examples.map((e) => digest(e.scene.pixels)));
const repeats = splits[1].examples.filter((e) => seen.has(digest(e.scene.pixels))).length;
console.log(`wrote ${VISION_DATA_DIR}: ${splits.map((s) => `${s.examples.length} ${s.name}`).join(", ")}; held-out pictures also in train: ${repeats}`);
