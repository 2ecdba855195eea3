/**
 * Every command takes a picture (issue: multimodal Excitor): `score`'s public contract against
 * the golden reference on both engines, `generate`, `chat` (/image), `attention` (where the
 * answer looks in the picture) and `serve` (an `image` field), and the one-line errors for a
 * picture nothing can read.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as readline from "node:readline";
import { ExcitorAdapter } from "../engine/excitor/adapter";
import { readModelConfig } from "../engine/model/config";
import { Rng } from "../engine/rng";
import { FIXTURES } from "./fixtures";
import { maxAbsDiff } from "./helpers/compare";
import { tempDir } from "./helpers/tiny-model";
import { BIN, assertUserError, excitor } from "./helpers/cli";

const GOLDEN = path.join(FIXTURES, "golden/vision");
const GQA = path.join(FIXTURES, "golden/gqa/model");
const STORIES = path.join(FIXTURES, "stories260k/hf");
const IMAGE = path.join(GOLDEN, "image.png");

/** A multimodal adapter for the real stories260K model, reading the golden CLIP tower; gates open so the picture shows. */
function storiesVisionAdapter(): string {
  const dir = path.join(tempDir(), "adapter");
  const model = readModelConfig(STORIES);
  const a = ExcitorAdapter.create(model, { numPrompts: 6, rank: 4, layers: [2, 3, 4], seed: 3, vision: { encoder: path.join(GOLDEN, "encoder"), featureLayer: -1, numTokens: 17, hiddenSize: 48 }, extra: { template: "alpaca" } });
  const rng = new Rng(9);
  for (const l of a.layers) l.gate.data.forEach((_, i, g) => (g[i] = 3 * rng.normal()));
  for (const t of [a.vision!.key, a.vision!.value]) t.data.forEach((x, i, d) => (d[i] = 4 * x));
  a.save(dir);
  return dir;
}

for (const backend of ["ort", "tfjs"]) {
  test(`excitor score --vision --image --ids --json matches the golden multimodal log-probs within 1e-4 (${backend})`, () => {
    const ids = fs.readFileSync(path.join(GOLDEN, "ids.txt"), "utf8").trim();
    const r = excitor(["--backend", backend, "score", "--model", GQA, "--adapter", path.join(GOLDEN, "adapter"), "--vision", path.join(GOLDEN, "encoder"), "--image", IMAGE, "--ids", ids, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    const expected = JSON.parse(fs.readFileSync(path.join(GOLDEN, "expected-excitor.json"), "utf8"));
    assert.deepEqual(out.ids, expected.ids);
    assert.ok(maxAbsDiff(out.logprobs, expected.logprobs) < 1e-4, `max diff ${maxAbsDiff(out.logprobs, expected.logprobs)}`);
    // Without --vision the adapter's own encoder path (relative to the adapter folder) is used.
    const own = JSON.parse(excitor(["--backend", backend, "score", "--model", GQA, "--adapter", path.join(GOLDEN, "adapter"), "--image", IMAGE, "--ids", ids, "--json"]).stdout);
    assert.ok(maxAbsDiff(own.logprobs, expected.logprobs) < 1e-4);
  });
}

test("a picture nothing can read is a one-line error: no adapter, a text adapter, --vision on a text adapter, a file that is not an image, a missing file, an encoder of another width", () => {
  const ids = "1,2,3";
  assertUserError(excitor(["score", "--model", GQA, "--image", IMAGE, "--ids", ids]), "--image", "pictures need --adapter");
  const text = path.join(FIXTURES, "golden/gqa/adapter");
  assertUserError(excitor(["score", "--model", GQA, "--adapter", text, "--image", IMAGE, "--ids", ids]), "--image", "is not multimodal");
  assertUserError(excitor(["score", "--model", GQA, "--adapter", text, "--vision", path.join(GOLDEN, "encoder"), "--ids", ids]), "--vision", "is not multimodal");
  const root = tempDir();
  const notImage = path.join(root, "notes.png");
  fs.writeFileSync(notImage, "hello, not a picture");
  assertUserError(excitor(["score", "--model", GQA, "--adapter", path.join(GOLDEN, "adapter"), "--image", notImage, "--ids", ids]), notImage);
  assertUserError(excitor(["score", "--model", GQA, "--adapter", path.join(GOLDEN, "adapter"), "--image", path.join(root, "gone.png"), "--ids", ids]), "gone.png");
  // An encoder that gives other features than the adapter was trained on.
  const other = path.join(root, "adapter");
  fs.cpSync(path.join(GOLDEN, "adapter"), other, { recursive: true });
  const cfg = JSON.parse(fs.readFileSync(path.join(other, "adapter_config.json"), "utf8"));
  fs.writeFileSync(path.join(other, "adapter_config.json"), JSON.stringify({ ...cfg, vision: { ...cfg.vision, num_tokens: 5 } }));
  assertUserError(excitor(["score", "--model", GQA, "--adapter", other, "--vision", path.join(GOLDEN, "encoder"), "--image", IMAGE, "--ids", ids]), "gives 17 tokens", "trained on 5");
});

test("generate, chat (/image) and attention take the picture: it changes the answer, and attention says where in the picture it looks", () => {
  const adapter = storiesVisionAdapter();
  const common = ["--model", STORIES, "--adapter", adapter];
  const gen = (extra: string[]) => excitor(["generate", ...common, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "24", ...extra]);
  const withPic = gen(["--image", IMAGE]);
  const without = gen([]);
  assert.equal(withPic.code, 0, withPic.stderr);
  assert.notEqual(withPic.stdout, without.stdout, "the picture changes the greedy answer");

  const chat = excitor(["chat", ...common, "--temperature", "0", "--max-tokens", "12"], `Tell me a story.\n/image ${IMAGE}\nTell me a story.\n/image\nTell me a story.\n`);
  assert.equal(chat.code, 0, chat.stderr);
  assert.ok(chat.stdout.includes(`(picture: ${IMAGE})`) && chat.stdout.includes("(picture removed)"), chat.stdout);
  const answers = chat.stdout.split("\n").filter((l) => !l.startsWith("("));
  assert.notEqual(answers[1], answers[0], "the picture changes the chat's answer");
  const badChat = excitor(["chat", ...common, "--max-tokens", "4"], `/image ${path.join(tempDir(), "none.png")}\n`);
  assert.equal(badChat.code, 0, "a bad /image is reported and the chat goes on");
  assert.match(badChat.stderr, /^excitor: error: .*none\.png/);

  const att = excitor(["attention", ...common, "--image", IMAGE, "--prompt", "What is in the picture?", "--response", "A cat.", "--json"]);
  assert.equal(att.code, 0, att.stderr);
  const report = JSON.parse(att.stdout);
  assert.equal(report.image.grid, 4);
  assert.equal(report.image.size, 32);
  assert.match(report.image.png, /^data:image\/png;base64,/);
  assert.deepEqual(report.image.layers.map((l: { layer: number }) => l.layer), [2, 3, 4]);
  const R = report.response[1] - report.response[0];
  for (const l of report.image.layers) {
    assert.equal(l.mass.length, 8, "per head");
    assert.equal(l.mass[0].length, R, "per response token");
    assert.equal(l.mass[0][0].length, 16, "per patch");
    const share = l.mass[0][0].reduce((a: number, b: number) => a + b, 0) + l.cls[0][0];
    assert.ok(share > 0 && share <= 1 + 1e-5, `a share of the attention (${share})`);
  }
  const tableOut = excitor(["attention", ...common, "--image", IMAGE, "--prompt", "What is in the picture?", "--response", "A cat."]);
  assert.match(tableOut.stdout, /reaches the picture/);
});

test("serve: ready announces the encoder, and generate and attention requests take an image path", async () => {
  const adapter = storiesVisionAdapter();
  const proc = spawn(process.execPath, [path.resolve(__dirname, "../../dist/bundle/excitor.js"), "serve", "--model", STORIES, "--adapter", adapter], { stdio: ["pipe", "pipe", "pipe"] });
  const events: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  readline.createInterface({ input: proc.stdout }).on("line", (l) => {
    events.push(JSON.parse(l));
    waiters.splice(0).forEach((w) => w());
  });
  const waitFor = async (pred: (e: Record<string, unknown>) => boolean) => {
    for (;;) {
      const e = events.find(pred);
      if (e) return e;
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  try {
    const ready = await waitFor((e) => e.type === "ready");
    assert.deepEqual(ready.vision, { numTokens: 17, grid: 4, imageSize: 32 });
    const ask = (id: number, extra: object) => proc.stdin.write(JSON.stringify({ id, op: "generate", messages: [{ role: "user", content: "Tell me a story." }], temperature: 0, maxTokens: 16, ...extra }) + "\n");
    ask(1, { image: IMAGE });
    ask(2, {});
    ask(3, { image: "relative.png" });
    ask(4, { image: path.join(tempDir(), "missing.png") });
    proc.stdin.write(JSON.stringify({ id: 5, op: "attention", prompt: "What is in the picture?", response: "A cat.", image: IMAGE }) + "\n");
    const [d1, d2] = [await waitFor((e) => e.id === 1 && e.type === "done"), await waitFor((e) => e.id === 2 && e.type === "done")];
    assert.notEqual(d1.text, d2.text, "the picture changes the answer");
    assert.match(String((await waitFor((e) => e.id === 3)).message), /generate\.image: expected the absolute path of a PNG or JPEG file/);
    assert.match(String((await waitFor((e) => e.id === 4)).message), /missing\.png/);
    const att = (await waitFor((e) => e.id === 5)) as { type: string; report: { image?: { layers: unknown[] } } };
    assert.equal(att.type, "attention");
    assert.equal(att.report.image!.layers.length, 3);
  } finally {
    proc.stdin.end();
    await new Promise((r) => proc.on("exit", r));
  }
});

test("excitor train --vision: a multimodal adapter from a dataset of pictures, its encoder recorded relative to it; --vision-layer alone is refused", () => {
  const root = tempDir();
  fs.copyFileSync(IMAGE, path.join(root, "a.png"));
  const data = path.join(root, "pics.jsonl");
  fs.writeFileSync(data, [0, 1, 2, 3].map((i) => JSON.stringify({ instruction: "<image>\nWhat is it?", output: i % 2 ? "A dog." : "A cat.", image: "a.png" })).join("\n") + "\n");
  const out = path.join(root, "out");
  const r = excitor(["train", "--model", STORIES, "--data", data, "--vision", path.join(GOLDEN, "encoder"), "--out", out, "--max-steps", "2", "--batch-size", "2", "--retain", "none", "--validation-share", "0", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /1 picture\(s\) encoded once/);
  const cfg = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8"));
  assert.deepEqual(cfg.vision, { encoder: path.relative(out, path.join(GOLDEN, "encoder")), feature_layer: -1, num_tokens: 17, hidden_size: 48 });
  const score = excitor(["score", "--model", STORIES, "--adapter", out, "--image", IMAGE, "--text", "A cat.", "--json"]);
  assert.equal(score.code, 0, score.stderr);
  assertUserError(excitor(["train", "--model", STORIES, "--data", data, "--out", path.join(root, "o2"), "--vision-layer", "-2"]), "--vision-layer", "give --vision DIR too");
  assertUserError(excitor(["train", "--model", STORIES, "--data", data, "--out", path.join(root, "o3")]), "pics.jsonl:1", "pass --vision DIR");
});
