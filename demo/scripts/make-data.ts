/**
 * Writes the demo's data into demo/data (committed): the instruction set's train and held-out
 * splits (Alpaca JSONL, plus the answer that scoring checks), and held-out stories for measuring
 * what the base model knew before and after tuning. Stories come from seeds the pretraining
 * corpus did not use.   npm run build && node dist/demo/scripts/make-data.js
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { stories } from "./corpus";
import { makeRecords } from "./instructions";

export const DATA_DIR = path.resolve(__dirname, "../../../demo/data");
const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";

fs.mkdirSync(DATA_DIR, { recursive: true });
fs.writeFileSync(path.join(DATA_DIR, "train.jsonl"), jsonl(makeRecords(stories(800, 3), 3)));
fs.writeFileSync(path.join(DATA_DIR, "heldout.jsonl"), jsonl(makeRecords(stories(100, 4), 4)));
fs.writeFileSync(path.join(DATA_DIR, "stories-heldout.jsonl"), jsonl(stories(100, 5).map((s) => ({ text: s.text }))));
console.log(`wrote ${DATA_DIR}`);
