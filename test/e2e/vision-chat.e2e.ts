/**
 * A multimodal adapter in a real VS Code (code-server) in a real browser: with the golden vision
 * adapter chosen, the chat offers an attach button; a dropped GIF is refused in the chat; a dropped
 * PNG waits with its thumbnail and a × that removes it; the attach button's file dialog attaches
 * the picture; the question goes with it and the answer comes; the question shows the thumbnail;
 * the attention panel, opened from the answer, names the image and shows where the answer looks in
 * the picture (a heatmap over it, the base model's clear picture beside it, the share through the
 * image); Clear starts a conversation without it. Screenshots go to out/e2e/vision-*.png.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import type { Frame, Page } from "playwright-core";
import { ExcitorAdapter } from "../../engine/excitor/adapter";
import { readModelConfig } from "../../engine/model/config";
import { Rng } from "../../engine/rng";
import { pickQuick, REPO, runCommand, screenshot, typeInFileDialog, waitFor, webviewFrame, workbenchForFile } from "./harness";

// The fixtures: a real pretrained LLaMA with its tokenizer (stories260K), the golden CLIP encoder, and a picture.
const GOLDEN = path.join(REPO, "test", "fixtures", "golden");
const VISION_MODEL = path.join(REPO, "test", "fixtures", "stories260k", "hf");
const VISION_ENCODER = path.join(GOLDEN, "vision", "encoder");
const PICTURE = path.join(GOLDEN, "vision", "image.png");
/** The adapted layers of the multimodal adapter made below (stories260K has 5). */
const ADAPTED = [2, 3, 4];
/** The picture's side and patch grid as the encoder sees it (encoder/preprocessor_config.json, patch_size). */
const IMAGE_SIZE = 32;
const GRID = 4;

const RUN_NAME = "vision-run";
/** Where the workspace holds its copies (set once the workbench is open). */
let picture: string;

const wb = workbenchForFile("vision", "vision-", (opened) => {
  // The model under the name the model picker shows, and the adapter as a finished run of it, as
  // training would leave it; its encoder is named by absolute path, the adapter having moved.
  const model = path.join(opened.workspace, "vision-model");
  fs.cpSync(VISION_MODEL, model, { recursive: true });
  const encoder = path.join(opened.workspace, "vision-encoder");
  fs.cpSync(VISION_ENCODER, encoder, { recursive: true });
  const run = path.join(opened.runsFolder, `${RUN_NAME}-20240101-120000`);
  // A multimodal adapter with open gates and strong image projections, so the picture shows in the answer's attention.
  const adapter = ExcitorAdapter.create(readModelConfig(model), { numPrompts: 6, rank: 4, layers: ADAPTED, seed: 3, vision: { encoder, featureLayer: -1, numTokens: 1 + GRID * GRID, hiddenSize: 48 }, extra: { template: "alpaca" } });
  const rng = new Rng(9);
  for (const l of adapter.layers) l.gate.data.forEach((_, i, g) => (g[i] = 3 * rng.normal()));
  for (const t of [adapter.vision!.key, adapter.vision!.value]) t.data.forEach((x, i, d) => (d[i] = 4 * x));
  adapter.save(run);
  const spec = { kind: "train", model, data: path.join(opened.workspace, "data.jsonl"), epochs: 1, batchSize: 8, maxLength: 64, validationShare: 0, seed: 0, vision: encoder };
  fs.writeFileSync(path.join(run, "run.json"), JSON.stringify({ name: RUN_NAME, spec, status: "done", createdAt: "2024-01-01T12:00:00.000Z" }));
  picture = path.join(opened.workspace, "picture.png");
  fs.copyFileSync(PICTURE, picture);
});

const text = async (f: Frame, selector: string) => ((await f.locator(selector).first().textContent()) ?? "").trim();
const busy = async (chat: Frame) => (await chat.locator("body").getAttribute("data-busy")) === "true";

async function openChat(): Promise<Frame> {
  await runCommand(wb().page, "Excitor: Focus on Chat View");
  return webviewFrame(wb().page, "chat");
}

/**
 * Drops a file with these bytes onto the chat, as the desktop would: a DataTransfer holding a File,
 * with Shift held (VS Code takes a drag over any webview for its editor area unless Shift is held).
 * A string: this file is compiled without the DOM's types.
 */
async function dropFile(chat: Frame, name: string, type: string, bytes: Buffer): Promise<void> {
  await chat.evaluate(`(() => {
    const bytes = Uint8Array.from(atob(${JSON.stringify(bytes.toString("base64"))}), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], ${JSON.stringify(name)}, { type: ${JSON.stringify(type)} }));
    for (const kind of ["dragenter", "dragover", "drop"]) document.body.dispatchEvent(new DragEvent(kind, { dataTransfer: dt, bubbles: true, cancelable: true, shiftKey: true }));
  })()`);
}

/** Picks `file` in VS Code's own (quick-input) open dialog, then its accept button `accept`. */
async function chooseInDialog(page: Page, file: string, accept: string, done: () => Promise<boolean>): Promise<void> {
  await typeInFileDialog(page, file);
  await waitFor(
    async () => {
      if (await done()) return true;
      const ok = page.locator(".quick-input-widget .monaco-button", { hasText: new RegExp(`^(OK|${accept})$`) }).first();
      if (await ok.isVisible()) await ok.click().catch(() => {});
      await new Promise((r) => setTimeout(r, 1000));
      return (await done()) || undefined;
    },
    30_000,
    `${path.basename(file)} chosen in the dialog`,
  );
}

test("the chat with a multimodal adapter: attach, drop and remove an image, ask about it, and see where the answer looks in the picture", async () => {
  const { page } = wb();
  const chat = await openChat();
  // Without an adapter: no attach button.
  await chat.locator("#adapter").click();
  await chat.locator("#adapter vscode-option", { hasText: "none (base model only)" }).click();
  await waitFor(async () => ((await chat.locator("#attach-image").isVisible()) ? undefined : true), 20_000, "no attach button without a multimodal adapter");

  await chat.locator("#change-model").click();
  await pickQuick(page, "vision-model");
  await waitFor(async () => ((await text(chat, ".model-label")) === "vision-model" ? true : undefined), 20_000, "the vision model to be chosen");
  await chat.locator("#adapter").click();
  await chat.locator("#adapter vscode-option", { hasText: RUN_NAME }).click();
  const attach = chat.locator("#attach-image");
  await waitFor(async () => ((await attach.isVisible()) ? true : undefined), 20_000, "the attach button");
  assert.equal(await attach.getAttribute("aria-label"), "Attach image");

  // A GIF named like a PNG is refused, in the chat, and nothing waits to be sent.
  await dropFile(chat, "not-really.png", "image/png", Buffer.from("GIF89a\x01\x00\x01\x00\x00\x00\x00;", "latin1"));
  await waitFor(async () => ((await text(chat, "#status")).includes("not a PNG or JPEG image") ? true : undefined), 10_000, "the refusal");
  assert.match(await text(chat, "#status"), /^could not attach the image: not-really\.png is not a PNG or JPEG image$/);
  assert.equal(await chat.locator("#pending-image").isVisible(), false);

  // A real PNG dropped: it waits with its thumbnail and name; × removes it.
  await dropFile(chat, "dropped.png", "image/png", fs.readFileSync(PICTURE));
  await waitFor(async () => ((await chat.locator("#pending-image").isVisible()) ? true : undefined), 20_000, "the dropped image waiting to be sent");
  assert.equal(await text(chat, "#pending-image .pending-name"), "dropped.png");
  await waitFor(async () => ((await chat.locator("#pending-image img").evaluate((i) => (i as unknown as { naturalWidth: number }).naturalWidth)) === IMAGE_SIZE ? true : undefined), 10_000, "its thumbnail to load (the view may show the chat's image folder)");
  await chat.locator("#remove-image").click();
  await waitFor(async () => ((await chat.locator("#pending-image").isVisible()) ? undefined : true), 10_000, "the image removed");

  // The attach button: VS Code's file dialog.
  await attach.click();
  await chooseInDialog(page, picture, "Attach", () => chat.locator("#pending-image").isVisible());
  assert.equal(await text(chat, "#pending-image .pending-name"), "picture.png");
  await screenshot(page, "vision-1-attached");

  // The question goes with the picture; a short answer keeps the attention report small.
  if (!(await chat.locator("#options").isVisible())) await chat.locator("#options-toggle").click();
  await chat.locator("details#sampling").evaluate((d) => ((d as unknown as { open: boolean }).open = true));
  await chat.locator("#max-tokens input").fill("12");
  await chat.locator("#options-toggle").click();
  await chat.locator("#prompt textarea").fill("What is in the picture?");
  await chat.locator("#prompt textarea").press("Enter");
  await waitFor(async () => ((await chat.locator(".turn.assistant").count()) === 1 && !(await busy(chat)) ? true : undefined), 120_000, "the answer");
  const question = chat.locator(".turn.user").last();
  assert.equal(await question.locator("img.turn-image").getAttribute("alt"), "Attached image: picture.png");
  assert.equal(await question.locator("img.turn-image").evaluate((i) => (i as unknown as { naturalWidth: number }).naturalWidth), IMAGE_SIZE, "the thumbnail loads under the view's CSP");
  const finish = await text(chat, ".turn.assistant .finish");
  assert.match(finish, /tokens/);
  assert.ok(!finish.includes("without the image"), `the adapter saw the picture (${finish})`);
  assert.equal(await chat.locator("#pending-image").isVisible(), false, "sent: nothing waits any more");
  assert.match(await text(chat, "#conv-image"), /^Image of this conversation: picture\.png/);
  await screenshot(page, "vision-2-answer");

  // Attention on that answer: the panel analyses the same picture.
  await chat.locator(".turn.assistant").last().locator("vscode-button", { hasText: "Attention" }).click();
  const panel = await webviewFrame(page, "attention");
  await waitFor(async () => ((await panel.locator("#image-attention").isVisible()) ? true : undefined), 120_000, "the picture heatmap");
  assert.match(await text(panel, "#att-image"), /^About the image picture\.png/);
  assert.equal(await text(panel, "#image-attention-title"), "Where the answer looks in the picture");
  const share = await text(panel, "#image-share");
  const m = /^Through the image: (\d+\.\d\d) % of the attention \(patches \d+\.\d\d %, class token \d+\.\d\d %\) with the Excitor adapter; base model 0 %\.$/.exec(share);
  assert.ok(m, share);
  assert.ok(Number(m[1]) > 0, "some of the answer's attention goes through the picture");
  // The layers offered are the adapted ones; heads with their mean; tokens with the whole response.
  assert.deepEqual((await panel.locator("#image-layer vscode-option").allTextContents()).map((s) => s.trim()), ADAPTED.map((l) => `${l} (adapted)`));
  assert.equal((await panel.locator("#image-head vscode-option").first().textContent())?.trim(), "mean of heads");
  assert.equal((await panel.locator("#image-token vscode-option").first().textContent())?.trim(), "whole response");
  // The overlay is drawn on the picture; the base model's stays clear, and says why.
  const painted = async (id: string) => Number(await panel.locator(`#${id} canvas`).getAttribute("data-painted"));
  assert.ok((await painted("image-tuned")) > 0, "heat cells are painted over the picture");
  assert.ok((await painted("image-tuned")) <= GRID * GRID);
  assert.equal(await painted("image-base"), 0, "the base model's picture has no heat");
  assert.match(await text(panel, "#image-base figcaption"), /cannot see the image/);
  // Pointing at a patch reads it out (the section is below the token heatmap: scrolled to first).
  await panel.locator("#image-tuned canvas").scrollIntoViewIfNeeded();
  const box = (await panel.locator("#image-tuned canvas").boundingBox())!;
  await page.mouse.move(box.x + box.width / (2 * GRID), box.y + box.height / (2 * GRID));
  await waitFor(async () => ((await text(panel, "#image-readout")).startsWith("Patch 0 (row 0, column 0): ") ? true : undefined), 10_000, "the readout of patch 0");
  // One head and one response token: the share is recomputed.
  await panel.locator("#image-head").click();
  await panel.locator("#image-head vscode-option", { hasText: "head 0" }).click();
  await panel.locator("#image-token").click();
  await panel.locator("#image-token vscode-option").nth(1).click();
  await waitFor(async () => ((await text(panel, "#image-tuned figcaption")).includes("head 0, response token 0") ? true : undefined), 10_000, "the caption for head 0, token 0");
  await panel.locator("#image-attention").scrollIntoViewIfNeeded();
  await screenshot(page, "vision-3-attention");
  await runCommand(page, "View: Close All Editors");

  // Clear starts a new conversation without the picture.
  const again = await openChat();
  await again.locator("#clear").click();
  await waitFor(async () => ((await again.locator(".turn").count()) === 0 ? true : undefined), 10_000, "an empty conversation");
  assert.equal(await again.locator("#conv-image").isVisible(), false, "no image in the new conversation");
  assert.equal(await again.locator("#pending-image").isVisible(), false);
});
