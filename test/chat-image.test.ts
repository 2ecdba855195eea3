/**
 * Images in the chat: only PNG or JPEG (by their first bytes, whatever the name says), at most
 * 20 MB, each refused with one line naming the file; a kept image is a whole copy named by its
 * content (the same picture twice is one file); housekeeping removes only old copies nothing uses;
 * the chat offers images only for an adapter whose config has a vision block.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { adapterTakesImages } from "../extension/chat-adapters";
import { pruneImages, storeImage } from "../extension/chat-image";
import { imageFormat, imageName, imageProblem, imageSizeProblem, MAX_IMAGE_BYTES } from "../extension/image-rules";

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46]);
const GIF = Buffer.from("GIF89a\x01\x00\x01\x00", "latin1");

function scratch(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "excitor-chat-image-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("PNG and JPEG are told by their first bytes; a GIF, a text file or a truncated header is not an image the chat takes", () => {
  assert.equal(imageFormat(PNG), "png");
  assert.equal(imageFormat(JPEG), "jpeg");
  assert.equal(imageFormat(GIF), undefined);
  assert.equal(imageFormat(Buffer.from("just text")), undefined);
  assert.equal(imageFormat(PNG.subarray(0, 7)), undefined);
  assert.equal(imageProblem("photo.png", PNG), undefined);
  assert.equal(imageProblem("photo.jpg", JPEG), undefined);
  // The name says PNG; the bytes say GIF.
  assert.equal(imageProblem("cat.png", GIF), "cat.png is not a PNG or JPEG image");
  assert.equal(imageProblem("empty.png", Buffer.alloc(0)), "empty.png is empty");
});

test("an image over 20 MB is refused with its size and the limit, before anything is read", () => {
  assert.equal(imageSizeProblem("huge.jpg", MAX_IMAGE_BYTES), undefined, "at the limit is fine");
  assert.equal(imageSizeProblem("huge.jpg", 25 * 1024 * 1024), "huge.jpg is 25.0 MB; an image can be at most 20 MB");
  const big = Buffer.alloc(MAX_IMAGE_BYTES + 1);
  JPEG.copy(big);
  assert.equal(imageProblem("huge.jpg", big), "huge.jpg is 20.1 MB; an image can be at most 20 MB", "just over the limit does not read as the limit");
});

test("names shown for attachments are the file's base name on one line, shortened when long", () => {
  assert.equal(imageName("/home/me/Pictures/cat.png"), "cat.png");
  assert.equal(imageName("C:\\Users\\me\\dog.jpg"), "dog.jpg");
  assert.equal(imageName("two\nlines.png"), "two lines.png");
  assert.equal(imageName(""), "image");
  const long = imageName(`${"x".repeat(100)}.png`);
  assert.ok(long.length <= 60 && long.endsWith(".png"), long);
});

test("a kept image is a whole copy named by its content; the same picture twice is one file; non-images are not kept", (t) => {
  const dir = path.join(scratch(t), "chat-images");
  const a = storeImage(dir, PNG);
  assert.match(path.basename(a), /^[0-9a-f]{24}\.png$/);
  assert.deepEqual(fs.readFileSync(a), PNG);
  assert.equal(storeImage(dir, PNG), a, "the same bytes, the same file");
  const b = storeImage(dir, JPEG);
  assert.match(path.basename(b), /\.jpg$/);
  assert.notEqual(a, b);
  assert.deepEqual(fs.readdirSync(dir).sort(), [path.basename(a), path.basename(b)].sort(), "no temporary files left behind");
  assert.throws(() => storeImage(dir, GIF), /not a PNG or JPEG/);
});

test("housekeeping removes old images nothing refers to, and keeps the conversation's, recent ones and other files", (t) => {
  const dir = scratch(t);
  const used = storeImage(dir, PNG);
  const unused = storeImage(dir, JPEG);
  const fresh = storeImage(dir, Buffer.concat([PNG, Buffer.from([1])]));
  const other = path.join(dir, "notes.txt");
  fs.writeFileSync(other, "mine");
  const old = (Date.now() - 10 * 24 * 3600 * 1000) / 1000;
  for (const f of [used, unused, other]) fs.utimesSync(f, old, old);
  pruneImages(dir, new Set([used]), 7 * 24 * 3600 * 1000);
  assert.ok(fs.existsSync(used), "the conversation's image stays");
  assert.ok(!fs.existsSync(unused), "an old unused image goes");
  assert.ok(fs.existsSync(fresh), "a recent one stays (another window may have just attached it)");
  assert.ok(fs.existsSync(other), "files that are not the chat's copies are left alone");
  pruneImages(path.join(dir, "missing"), new Set(), 0); // no folder yet: nothing to do, no error
});

test("the chat offers images for an Excitor adapter whose config has a vision block, not for text adapters or LoRA", (t) => {
  const dir = scratch(t);
  const adapter = (name: string, config: unknown) => {
    const d = path.join(dir, name);
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, "adapter_config.json"), JSON.stringify(config));
    return d;
  };
  const base = { peft_type: "EXCITOR", task_type: "CAUSAL_LM", num_prompts: 4, rank: 2, layers: [1] };
  assert.equal(adapterTakesImages(adapter("vision", { ...base, vision: { encoder: "../encoder", feature_layer: -1, num_tokens: 50, hidden_size: 32 } })), true);
  assert.equal(adapterTakesImages(adapter("text", base)), false);
  assert.equal(adapterTakesImages(adapter("null-vision", { ...base, vision: null })), false);
  assert.equal(adapterTakesImages(adapter("lora", { peft_type: "LORA", r: 8, vision: {} })), false);
  assert.equal(adapterTakesImages(path.join(dir, "nowhere")), false);
});
