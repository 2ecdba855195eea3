/**
 * The extension in a real VS Code (code-server) in a real browser: train from the command palette
 * on the built-in demo model and watch the training panel to the end; chat in the sidebar and see
 * the answer stream; stop an answer mid-way and see the engine end it; open the attention heatmap.
 * Screenshots of each step go to out/e2e/.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import type { Frame, Page } from "playwright-core";
import { writeTinyModel } from "../helpers/tiny-model";
import { trainFromPalette, pickQuick, runCommand, screenshot, setTheme, typeInFileDialog, waitFor, webviewFrame, workbenchForFile } from "./harness";

const wb = workbenchForFile("main", "");

const text = async (f: Frame, selector: string) => (await f.locator(selector).first().textContent()) ?? "";

test("Train Adapter… from the command palette on the demo model: the training panel shows progress, then finishes", async () => {
  const { page } = wb();
  await trainFromPalette(page, "Quick");
  const panel = await webviewFrame(page, "training");
  // Progress: a step count above zero while the run is still going.
  await waitFor(
    async () => {
      const step = await text(panel, '[data-stat="step"]');
      const m = /^(\d+) \/ (\d+)/.exec(step);
      return m && Number(m[1]) > 0 ? true : undefined;
    },
    180_000,
    "a training step in the panel",
  );
  await screenshot(page, "1-training-progress");
  // Kept knowledge, live beside the validation loss: the engine validates before the first step
  // (the tuned model starts as the base, KL 0) and then as it goes; each adds a point.
  const retention = panel.locator("#retention svg.chart");
  const points = async () => Number((await retention.getAttribute("data-points")) ?? 0);
  await waitFor(async () => ((await points()) >= 1 ? true : undefined), 120_000, "a point on the kept-knowledge chart");
  assert.equal(await panel.locator("#retention .chart-title").textContent(), "kept knowledge: KL to base");
  assert.match(await text(panel, "#retention-note"), /^ppl ×\d\.\d+ on the retention set · KL [\d.e+-]+ nats\/token/);
  assert.equal(await text(panel, '[data-stat="method"]'), "Excitor");
  await panel.locator("#retention").scrollIntoViewIfNeeded();
  await screenshot(page, "1b-training-kept-knowledge");
  await waitFor(async () => ((await text(panel, "#run-status")) === "done" ? true : undefined), 300_000, "the run to finish");
  assert.ok((await points()) >= 2, "validations during and at the end of the run each add a point");
  const step = await text(panel, '[data-stat="step"]');
  // Quick on the demo data (760 training examples at batch 8): 120 steps, its plan shown in the panel.
  assert.match(step, /^120 \/ 120$/, "the quick preset runs 120 steps");
  assert.match(await text(panel, '[data-stat="recipe"]'), /^120 steps of 8 \(2 epochs\), peak learning rate 0\.03/);
  assert.match((await panel.locator('[data-stat="recipe"]').getAttribute("title")) ?? "", /^Quick: 760 training examples → 2 epochs, 120 steps of 8/, "hovering says why these numbers");
  assert.match(await text(panel, "#verdict"), /^The model learned: training loss \d\.\d\d → \d\.\d\d, −\d+ %\.$/, "the end of the run says in words that the loss fell");
  assert.notEqual(await text(panel, '[data-stat="loss"]'), "–");
  // The .vsix carries onnxruntime for this platform: the installed extension trains on it.
  assert.equal(await text(panel, '[data-stat="backend"]'), "onnxruntime-cpu");
  assert.match((await panel.locator('[data-stat="backend"]').getAttribute("title")) ?? "", /^onnxruntime [\d.]+ on the CPU/, "hovering says why this backend runs");
  assert.ok((await panel.locator("svg.chart path.line").count()) >= 2, "loss and learning-rate curves are drawn");
  await screenshot(page, "2-training-done");
  const runs = fs.readdirSync(wb().runsFolder);
  assert.equal(runs.length, 1);
  for (const f of ["adapter_config.json", "adapter_model.safetensors", "metrics.jsonl", "run.json"]) assert.ok(fs.existsSync(path.join(wb().runsFolder, runs[0], f)), `${f} written`);
});

test("the training panel closes and reopens from the Runs view without losing the picture", async () => {
  const { page } = wb();
  await runCommand(page, "View: Close All Editors");
  await page.locator(".monaco-workbench").waitFor();
  await runCommand(page, "Excitor: Focus on Runs View");
  const item = page.locator(".pane-body .monaco-list-row", { hasText: "train-quick" }).first();
  // Hovering the run: its method and how much of the base model's knowledge it kept.
  await item.hover();
  const hover = page.locator(".workbench-hover, .monaco-hover", { hasText: "kept knowledge" }).first();
  await hover.waitFor({ timeout: 20_000 });
  const said = (await hover.textContent()) ?? "";
  assert.match(said, /method: Excitor/);
  assert.match(said, /kept knowledge: KL to base [\d.e+-]+ nats\/token, ppl ×\d\.\d+ on the retention set/);
  await screenshot(page, "2a-runs-tooltip");
  await page.mouse.move(600, 20);
  await page.keyboard.press("Escape");
  await item.click();
  const panel = await webviewFrame(page, "training");
  await waitFor(async () => ((await text(panel, '[data-stat="step"]')) === "120 / 120" ? true : undefined), 30_000, "the reopened panel to show the run");
  assert.equal(await text(panel, "#run-status"), "done");
  assert.ok((await panel.locator("svg.chart path.line").count()) >= 2, "the curves are back");
  // Open Folder reveals the run's folder in the Explorer (the workspace holds the runs).
  await panel.locator("vscode-button", { hasText: "Open Folder" }).click();
  await page.locator(".explorer-folders-view .monaco-list-row", { hasText: /train-quick-\d/ }).first().waitFor({ timeout: 20_000 });
});

test("Cancel in the progress notification stops the run with a checkpoint; Resume Training and Stop Training act on it", async () => {
  const { page } = wb();
  await trainFromPalette(page, "Standard");
  // Two training panels are open now; this one is found by its run's name, afresh at each look.
  const panel = () => webviewFrame(page, "training", 30_000, "train-standard");
  const stepOf = async () => Number(/^(\d+) \//.exec(await text(await panel(), '[data-stat="step"]'))?.[1] ?? 0);
  const status = async () => text(await panel(), "#run-status");
  await waitFor(async () => ((await stepOf()) >= 2 ? true : undefined), 120_000, "the standard run to take steps");
  // The progress notification: a toast, or (once VS Code has tucked the toast away) an entry in the notification center.
  const toast = page.locator(".notifications-toasts .notification-toast", { hasText: "training train-standard" }).first();
  if (!(await toast.isVisible())) await runCommand(page, "Notifications: Show Notifications");
  const note = (await toast.isVisible()) ? toast : page.locator(".notifications-center .notification-list-item", { hasText: "training train-standard" }).first();
  await note.locator(".monaco-button", { hasText: "Cancel" }).click();
  await waitFor(async () => ((await status()) === "stopped" ? true : undefined), 60_000, "the run to stop");
  const stoppedAt = await stepOf();
  const run = fs.readdirSync(wb().runsFolder).find((d) => d.startsWith("train-standard"))!;
  assert.ok(fs.existsSync(path.join(wb().runsFolder, run, "checkpoint")), "the checkpoint is kept");
  assert.ok(stoppedAt < 100, `stopped early (step ${stoppedAt})`);
  await screenshot(page, "2b-training-cancelled");

  await runCommand(page, "Excitor: Resume Training");
  await waitFor(async () => ((await status()) === "running" && (await stepOf()) > stoppedAt ? true : undefined), 120_000, "the resumed run to go on from its checkpoint");
  await runCommand(page, "Excitor: Stop Training");
  await waitFor(async () => ((await status()) === "stopped" ? true : undefined), 60_000, "the resumed run to stop");
  await runCommand(page, "View: Close All Editors");
});

async function openChat(): Promise<Frame> {
  await runCommand(wb().page, "Excitor: Focus on Chat View");
  return webviewFrame(wb().page, "chat");
}

/** Unfolds the chat's options (the Input field, the template, Compare) and the sampling fields in them. */
async function openSettings(chat: Frame): Promise<void> {
  if (!(await chat.locator("#options").isVisible())) await chat.locator("#options-toggle").click();
  await chat.locator("details#sampling").evaluate((d) => ((d as unknown as { open: boolean }).open = true));
}

async function ask(chat: Frame, question: string, context: string): Promise<void> {
  await openSettings(chat);
  await chat.locator("#prompt textarea").fill(question);
  await chat.locator("#context textarea").fill(context);
  await chat.locator("#send").click();
}

test("the sidebar chat streams an answer from the tuned model", async () => {
  const chat = await openChat();
  // The run just trained is offered as an adapter; choose it.
  const adapter = await waitFor(async () => (await chat.locator("#adapter vscode-option").evaluateAll((os) => os.map((o) => o.getAttribute("value") ?? ""))).find((v) => v.includes("train-quick")), 20_000, "the trained adapter in the list");
  await chat.locator("#adapter").click();
  await chat.locator("#adapter vscode-option", { hasText: "train-quick" }).click();
  await waitFor(async () => ((await chat.locator("#adapter").evaluate((el) => (el as unknown as { value: string }).value)) === adapter ? true : undefined), 10_000, "the adapter to be selected");
  // Streaming: the answer grows over several updates before generation ends. A DOM observer in
  // the webview records every length the answer takes: the onnxruntime engine can finish a short
  // answer between two polls from here.
  await chat.evaluate(`(() => {
    const seen = (window.answerLengths = []);
    new MutationObserver(() => {
      const texts = document.querySelectorAll(".turn.assistant .text");
      if (texts.length) seen.push((texts[texts.length - 1].textContent || "").length);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  })()`); // a string: this file is compiled without the DOM's types
  await ask(chat, "What is the name of the bird?", "One day, a brave bird named Sue went to the town. The bird lived near the town.");
  await waitFor(
    async () => ((await chat.locator("body").getAttribute("data-busy")) === "false" && (await chat.locator(".turn.assistant .finish").count()) > 0 ? true : undefined),
    120_000,
    "the answer to finish",
  );
  const answer = (await chat.locator(".turn.assistant .text").last().textContent()) ?? "";
  assert.ok(answer.trim().length > 0, "the model answered");
  const lengths = new Set(((await chat.evaluate("window.answerLengths")) as number[]).filter((n) => n > 0));
  assert.ok(lengths.size >= 2, `the answer arrived in pieces (lengths seen: ${[...lengths].join(", ")})`);
  assert.match(await text(chat, ".turn.assistant .finish"), /tokens\/s/);
  await screenshot(wb().page, "3-chat-answer");
});

test("compare with base answers twice; the conversation survives hiding the view; Clear empties it", async () => {
  const { page } = wb();
  const chat = await openChat();
  await openSettings(chat);
  await chat.locator("#compare").click();
  const before = await chat.locator(".turn.assistant").count();
  await ask(chat, "What did Sue find?", "One day, a brave bird named Sue went to the town. Sue saw a red kite under a big tree.");
  await waitFor(async () => ((await chat.locator(".turn.assistant").count()) === before + 2 && (await chat.locator("body").getAttribute("data-busy")) === "false" ? true : undefined), 120_000, "the tuned and the base answer");
  const who = await chat.locator(".turn.assistant .who").allTextContents();
  assert.deepEqual(who.slice(-2), ["Tuned", "Base model"]);
  await screenshot(page, "3b-chat-compare");
  // "Attention" on the tuned answer opens the heatmap for that question and answer.
  const tunedAnswer = ((await chat.locator(".turn.assistant .text").nth(-2).textContent()) ?? "").trim();
  await chat.locator(".turn.assistant").nth(-2).locator("vscode-button", { hasText: "Attention" }).click();
  const attention = await webviewFrame(page, "attention");
  await waitFor(async () => ((await attention.locator("#heatmap-tip").textContent())?.includes("query") ? true : undefined), 60_000, "the heatmap of the chat answer");
  assert.equal(await attention.locator("#att-prompt").evaluate((el) => (el as unknown as { value: string }).value), "What did Sue find?");
  assert.equal((await attention.locator("#att-response").evaluate((el) => (el as unknown as { value: string }).value)).trim(), tunedAnswer);
  await runCommand(page, "View: Close Editor");
  const turns = await chat.locator(".turn").count();
  // Switch the sidebar to the Explorer and back: the chat's webview is disposed and rebuilt, the conversation stays.
  await runCommand(page, "View: Show Explorer");
  await waitFor(async () => ((await chat.locator("body").count().catch(() => 0)) === 0 ? true : undefined), 20_000, "the chat webview to go away");
  const again = await openChat();
  await waitFor(async () => ((await again.locator(".turn").count()) === turns ? true : undefined), 20_000, "the conversation after re-showing the view");
  await again.locator("#clear").click();
  await waitFor(async () => ((await again.locator(".turn").count()) === 0 ? true : undefined), 10_000, "an empty conversation");
});

test("Show Attention opens the heatmap panel for a prompt", async () => {
  const { page } = wb();
  await runCommand(page, "Excitor: Show Attention");
  // It asks which adapter first: the chat's (the run chosen above) is offered.
  await pickQuick(page, "The chat's adapter: train-quick");
  const input = page.locator(".quick-input-widget input.input");
  await waitFor(async () => ((await page.locator(".quick-input-widget .quick-input-title").textContent().catch(() => ""))?.endsWith("Show Attention") ? true : undefined), 10_000, "the instruction box");
  await input.fill("What is the name of the bird?");
  await page.keyboard.press("Enter");
  const panel = await webviewFrame(page, "attention");
  await waitFor(async () => ((await panel.locator("#heatmap-tip").textContent())?.includes("query") ? true : undefined), 120_000, "the heatmap");
  const size = await panel.locator("#heatmap").evaluate((c) => [(c as unknown as { width: number }).width, (c as unknown as { height: number }).height]);
  assert.ok(size[0] > 50 && size[1] > 50, `the heatmap is drawn (${size.join("×")})`);
  assert.ok((await panel.locator(".mass .mass-bar.tuned").count()) > 0, "the per-layer instruction-attention chart is drawn");
  // Keyboard: the cursor moves with the arrow keys and the readout follows.
  const before = await text(panel, "#heatmap-tip");
  await panel.locator("#heatmap").focus();
  await page.keyboard.press("ArrowRight");
  assert.notEqual(await text(panel, "#heatmap-tip"), before);
  // Theme colours: switching to high contrast redraws the map in that theme's colours.
  const corner = () => panel.locator("#heatmap").evaluate((c) => Array.from((c as unknown as { getContext(k: string): { getImageData(x: number, y: number, w: number, h: number): { data: number[] } } }).getContext("2d").getImageData(1, 1, 1, 1).data).join(","));
  const light = await corner();
  await setTheme(page, "Dark High Contrast");
  await waitFor(async () => ((await corner()) !== light ? true : undefined), 20_000, "the heatmap to take the high-contrast colours");
  await screenshot(page, "5a-attention-high-contrast");
  await setTheme(page, "Dark Modern");
  await waitFor(async () => ((await corner()) !== light ? true : undefined), 20_000, "the heatmap to take the dark theme's colours");
  await screenshot(page, "5b-attention-dark");
  await setTheme(page, "Light Modern");
  await waitFor(async () => ((await corner()) === light ? true : undefined), 20_000, "the heatmap to take the light theme's colours back");
  // Difference mode redraws the same panel.
  await panel.locator("#mode vscode-radio", { hasText: "Difference" }).click();
  await waitFor(async () => ((await text(panel, ".legend")).includes("difference") ? true : undefined), 10_000, "the difference map");
  await screenshot(page, "5-attention");
  // Export SVG through the save dialog.
  const target = path.join(wb().workspace, "heatmap.svg");
  await panel.locator("#export-svg").click();
  await input.waitFor();
  await typeInFileDialog(page, target);
  // The dialog checks the typed path as it changes; accept once it shows it, again if a first click came too early.
  await waitFor(
    async () => {
      if (fs.existsSync(target)) return true;
      const ok = page.locator(".quick-input-widget .monaco-button", { hasText: /^(OK|Export)$/ }).first();
      if (await ok.isVisible()) await ok.click().catch(() => {});
      await new Promise((r) => setTimeout(r, 1000));
      return fs.existsSync(target) || undefined;
    },
    30_000,
    "the exported SVG",
  );
  const svg = fs.readFileSync(target, "utf8");
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.ok((svg.match(/<rect /g) ?? []).length > 100, "the cells are in the SVG");
});

test("Stop ends generation in the engine mid-answer", async () => {
  const { page } = wb();
  // A random 8-layer model: slower than the demo model and with no learned end of text, so an
  // answer is still streaming when Stop is pressed. It is chosen through the chat's "Change…".
  const slow = path.join(wb().workspace, "slow-model");
  writeTinyModel(slow, { hidden: 512, layers: 8, heads: 8, kvHeads: 8, intermediate: 1376, scale: 0.02 });
  const chat = await openChat();
  await chat.locator("#change-model").click();
  await pickQuick(page, "Browse…");
  const input = page.locator(".quick-input-widget input.input");
  await input.waitFor();
  await typeInFileDialog(page, slow + "/");
  // A folder dialog lists sub-folders only: once it has moved into slow-model (which has none) just ".." is left.
  // Accepting before that would pick the parent folder.
  const rows = page.locator(".quick-input-list .monaco-list-row");
  let listed = 0;
  await waitFor(
    async () => {
      const n = (await rows.allTextContents()).length;
      const settled = n === 1 && listed === 1 && (await input.inputValue()) === slow + "/";
      listed = n;
      if (!settled) await new Promise((r) => setTimeout(r, 400));
      return settled || undefined;
    },
    20_000,
    "the dialog to enter slow-model",
  );
  await page.locator(".quick-input-widget .monaco-button", { hasText: "Use this model" }).click();
  await waitFor(async () => ((await text(chat, ".model-label")) === "slow-model" ? true : undefined), 20_000, "the slow model to be chosen");
  await openSettings(chat);
  await chat.locator("#max-tokens input").fill("2000");
  await chat.locator("#temperature input").fill("1");
  // Sampling is random: an answer may (rarely) end by itself before Stop lands; then ask again.
  let finish = "";
  for (let attempt = 0; attempt < 3 && !finish.includes("stopped"); attempt++) {
    const before = await chat.locator(".turn.assistant").count();
    await ask(chat, "Write a very long story about a dog and a cat.", "");
    const answer = chat.locator(".turn.assistant").nth(before);
    await waitFor(async () => ((await answer.count()) > 0 && ((await answer.locator(".text").textContent()) ?? "").length > 0 ? true : undefined), 60_000, "the answer to start");
    await chat.locator("#stop").click();
    finish = await waitFor(async () => ((await answer.locator(".finish").count()) > 0 ? ((await answer.locator(".finish").textContent()) ?? undefined) : undefined), 60_000, "the answer to end");
  }
  // The host marks an answer stopped only when the engine reports that it aborted generation.
  const m = /stopped in the engine after (\d+) tokens/.exec(finish);
  assert.ok(m, `the engine reported the stop (got "${finish}")`);
  assert.ok(Number(m[1]) < 2000, "it stopped before the token budget");
  assert.equal(await chat.locator("body").getAttribute("data-busy"), "false", "the chat is ready for the next question");
  await screenshot(page, "4-chat-stopped");
});

test("a malformed dataset: the error names the file and line, and Open File goes there", async () => {
  const { page } = wb();
  fs.writeFileSync(path.join(wb().workspace, "broken.jsonl"), '{"instruction":"a","output":"b"}\n{"instruction":"c","output":"d"}\n{"instruction": oops}\n');
  // Checked as soon as it is chosen: no preset is asked for.
  await runCommand(page, "Excitor: Train Adapter");
  await pickQuick(page, "Built-in demo model");
  // By keyboard: the mouse, left where the model row was, hovers a dataset row whose tooltip covers the next rows.
  await page.locator(".quick-input-list .monaco-list-row", { hasText: "broken.jsonl" }).waitFor({ timeout: 20_000 });
  await page.locator(".quick-input-widget input.input").fill("broken.jsonl");
  await page.keyboard.press("Enter");
  const toast = page.locator(".notifications-toasts .notification-toast", { hasText: "broken.jsonl:3" }).first();
  await toast.waitFor({ timeout: 60_000 });
  assert.match((await toast.textContent()) ?? "", /malformed JSON/);
  await screenshot(page, "6-dataset-error");
  await toast.locator(".monaco-button", { hasText: "Open File" }).click();
  await page.locator(".tab.active", { hasText: "broken.jsonl" }).waitFor({ timeout: 20_000 });
  await page.locator(".statusbar", { hasText: "Ln 3," }).waitFor({ timeout: 20_000 });
});
