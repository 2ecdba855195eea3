/**
 * The multimodal training row: `node dist/bench/vision-worker.js <backend> <steps>`. Trains the
 * demo model on the multimodal demo's questions (demo/vision/data) twice, as the trainer runs
 * them: with their pictures (a multimodal adapter, features from demo/vision/encoder) and as text
 * only (the same records without their "image" fields). Prints one JSON line: each run's tokens/s
 * per step (the first steps, compiling graphs, left out) and the one-time cost of encoding the
 * pictures, which the trainer pays before its first step.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { openModel, type BackendChoice } from "../engine/load";
import { TextTokenizer } from "../engine/tokenizer/tokenizer";
import { RETAIN_NONE } from "../engine/train/retention";
import { train, TRAIN_DEFAULTS, type TrainOptions } from "../engine/train/trainer";
import { VisionEncoder } from "../engine/vision/encoder";

const repo = path.resolve(__dirname, "../..");
const MODEL = path.join(repo, "demo", "model");
const ENCODER = path.join(repo, "demo", "vision", "encoder");
const DATA = path.join(repo, "demo", "vision", "data", "train.jsonl");
/** Steps left out of the medians: graphs compile and memory settles in them. */
const WARMUP = 2;

async function main(): Promise<void> {
  const [backend, stepsArg] = process.argv.slice(2);
  const steps = Number(stepsArg ?? "12");
  const tok = TextTokenizer.fromFolder(MODEL);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "excitor-bench-vision-"));
  try {
    // The text-only twin: the same questions, their pictures dropped (a text adapter on the same data).
    const textData = path.join(root, "text.jsonl");
    const lines = fs.readFileSync(DATA, "utf8").trim().split("\n");
    fs.writeFileSync(textData, lines.map((l) => JSON.stringify({ ...JSON.parse(l), image: undefined })).join("\n") + "\n");
    const run = async (withImages: boolean) => {
      const rt = await openModel(MODEL, { backend: backend as BackendChoice, forTraining: true });
      const encoder = withImages ? await VisionEncoder.load(ENCODER, { engine: rt.backend.startsWith("onnxruntime") ? "onnxruntime" : "tfjs" }) : undefined;
      const speeds: number[] = [];
      let encodeSeconds = 0;
      const o: TrainOptions = {
        ...TRAIN_DEFAULTS,
        dataFile: withImages ? DATA : textData,
        outDir: path.join(root, withImages ? "images" : "text"),
        baseModel: MODEL,
        epochs: 100,
        maxSteps: steps + WARMUP,
        batchSize: 16,
        microBatch: 16,
        numPrompts: 30,
        rank: 16,
        validationShare: 0,
        checkpointEvery: 0,
        retain: RETAIN_NONE,
        ...(encoder ? { vision: { encoder, dir: ENCODER, featureLayer: -1 } } : {}),
        onEvent: (e) => {
          if (e.type === "step" && e.step > WARMUP) speeds.push(e.tokensPerSecond);
          if (e.type === "log" && /picture\(s\) encoded once/.test(e.message)) encodeSeconds = Number(/in ([\d.]+) s/.exec(e.message)?.[1] ?? NaN);
        },
      };
      await train(rt, tok, o);
      const images = encoder?.imagesEncoded ?? 0;
      encoder?.dispose();
      const result = { backend: rt.backend, speeds, encodeSeconds, images };
      rt.dispose();
      return result;
    };
    const text = await run(false);
    const images = await run(true);
    console.log(JSON.stringify({ backend: images.backend, textOnly: text.speeds, withImages: images.speeds, encodeSeconds: images.encodeSeconds, images: images.images }));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.log(JSON.stringify({ error: (e as Error).message }));
});
