/**
 * LoRA in the extension, in a real VS Code (code-server) in a real browser: the Custom preset
 * trains a LoRA adapter (the method picked first, PEFT's defaults shown on the summary), the
 * training panel shows it with its kept knowledge and no gates, the chat lists it marked “LoRA”
 * and answers with it, and the attention panel names it in its modes and bars and shows no
 * gate table. Screenshots go to out/e2e/lora-*.png.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import type { Frame } from "playwright-core";
import { trainFromPalette, pickQuick, runCommand, screenshot, waitFor, webviewFrame, workbenchForFile } from "./harness";

const wb = workbenchForFile("lora", "lora-");
const text = async (f: Frame, selector: string) => ((await f.locator(selector).first().textContent()) ?? "").trim();

test("the Custom preset trains a LoRA adapter: method first, PEFT's defaults on the summary, --method lora on the command", async () => {
  const { page } = wb();
  await trainFromPalette(page, "Custom…");
  const title = page.locator(".quick-input-widget .quick-input-title");
  const input = page.locator(".quick-input-widget input.input");
  await waitFor(async () => ((await title.textContent())?.includes("what to train") ? true : undefined), 10_000, "the method page");
  await pickQuick(page, "LoRA");
  // LoRA's fields: its rank and alpha instead of K and r, then the common ones, the layers and its targets.
  const seen: string[] = [];
  for (let i = 1; i <= 11; i++) {
    const t = await waitFor(async () => {
      const s = (await title.textContent()) ?? "";
      return s.includes(`(${i}/11)`) ? s : undefined;
    }, 10_000, `field ${i} of 11`);
    seen.push(t.replace(/^Excitor: /, "").replace(/ \(\d+\/11\)$/, ""));
    if (t.includes("Max steps")) await input.fill("24"); // a short run
    await page.keyboard.press("Enter");
  }
  assert.deepEqual(seen, ["LoRA rank r", "LoRA alpha", "Epochs", "Max steps", "Learning rate", "Batch size", "Max length", "Validation share", "Seed", "adapted layers", "LoRA targets"]);
  await waitFor(async () => ((await title.textContent())?.includes("summary") ? true : undefined), 10_000, "the summary page");
  const row = (label: string) => page.locator(".quick-input-list .monaco-list-row", { hasText: label }).first();
  assert.match((await row("Method").textContent()) ?? "", /Method\s*LoRA/);
  assert.match((await row("LoRA rank r").textContent()) ?? "", /8 \(PEFT's default\)/);
  assert.match((await row("LoRA alpha").textContent()) ?? "", /16 \(PEFT's default\)/);
  assert.match((await row("LoRA targets").textContent()) ?? "", /q_proj, v_proj \(PEFT's default\)/);
  assert.match((await row("Adapted layers").textContent()) ?? "", /all layers/);
  assert.match((await row("Learning rate").textContent()) ?? "", /the method's default/, "Excitor's rate is not carried over");
  assert.equal(await page.locator(".quick-input-list .monaco-list-row", { hasText: "Prompts K" }).count(), 0, "no Excitor knobs");
  await screenshot(page, "lora-1-custom-summary");
  await row("Start training").click();

  const panel = await webviewFrame(page, "training", 30_000, "train-custom-lora");
  await waitFor(async () => ((await text(panel, "#run-status")) === "done" ? true : undefined), 300_000, "the LoRA run to finish");
  assert.equal(await text(panel, '[data-stat="method"]'), "LoRA");
  assert.equal(await text(panel, '[data-stat="step"]'), "24 / 24");
  assert.ok(Number(await panel.locator("#retention svg.chart").getAttribute("data-points")) >= 2, "kept knowledge measured before and after");
  assert.match(await text(panel, "#retention-note"), /^ppl ×\d\.\d+ on the retention set/);
  assert.match(await text(panel, ".gates"), /^LoRA has no gates/);
  await panel.locator("#retention").scrollIntoViewIfNeeded();
  await screenshot(page, "lora-2-training-done");

  const runs = fs.readdirSync(wb().runsFolder);
  assert.equal(runs.length, 1);
  const dir = path.join(wb().runsFolder, runs[0]);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, "run.json"), "utf8")).spec.method, "lora");
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, "adapter_config.json"), "utf8")).peft_type, "LORA");
  await runCommand(page, "View: Close All Editors");
});

test("the chat lists the LoRA adapter marked as such and answers with it", async () => {
  const { page } = wb();
  await runCommand(page, "Excitor: Focus on Chat View");
  const chat = await webviewFrame(page, "chat");
  const entries = () => chat.locator("#adapter vscode-option").evaluateAll((os) => os.map((o) => ({ value: o.getAttribute("value") ?? "", text: (o.textContent ?? "").trim(), disabled: o.hasAttribute("disabled") })));
  const lora = await waitFor(async () => (await entries()).find((e) => e.text.startsWith("train-custom-lora")), 20_000, "the LoRA run in the adapter list");
  assert.match(lora.text, /^train-custom-lora · .* · LoRA · done$/);
  assert.equal(lora.disabled, false, "it fits the demo model");
  await chat.locator("#adapter").click();
  await chat.locator("#adapter vscode-option", { hasText: "train-custom-lora" }).click();
  await waitFor(async () => ((await chat.locator("#adapter").evaluate((el) => (el as unknown as { value: string }).value)) === lora.value ? true : undefined), 10_000, "the adapter to be selected");
  await chat.locator("#prompt textarea").fill("What is the name of the bird?");
  await chat.locator("#prompt textarea").press("Enter");
  await waitFor(async () => ((await chat.locator(".turn.assistant").count()) === 1 && (await chat.locator("body").getAttribute("data-busy")) === "false" ? true : undefined), 120_000, "the answer");
  assert.match(await text(chat, ".turn.assistant .by"), /^train-custom-lora · .* · LoRA on built-in demo model$/);
  assert.notEqual(await text(chat, ".turn.assistant .text"), "");
  await screenshot(page, "lora-3-chat");
});

test("the attention panel on the LoRA adapter names it in its modes and bars, and shows no gate table", async () => {
  const { page } = wb();
  await runCommand(page, "Excitor: Show Attention");
  const title = () => page.locator(".quick-input-widget .quick-input-title").textContent().catch(() => "");
  await waitFor(async () => ((await title())?.endsWith("which adapter?") ? true : undefined), 20_000, "the adapter question");
  // The chat uses the LoRA adapter now: offered first, as the chat's, marked LoRA.
  const row = page.locator(".quick-input-widget .quick-input-list .monaco-list-row", { hasText: "The chat's adapter: train-custom-lora" }).first();
  await row.waitFor({ timeout: 10_000 });
  assert.match((await row.textContent()) ?? "", /LoRA · built-in demo model/);
  await row.click();
  await waitFor(async () => ((await title())?.endsWith("Show Attention") ? true : undefined), 10_000, "the instruction box");
  await page.locator(".quick-input-widget input.input").fill("What is the name of the bird?");
  await page.keyboard.press("Enter");
  const panel = await webviewFrame(page, "attention");
  await waitFor(async () => ((await panel.locator("#heatmap-tip").textContent())?.includes("query") ? true : undefined), 120_000, "the heatmap");
  const modes = await panel.locator("#mode vscode-radio").allTextContents();
  assert.deepEqual(modes.map((m) => m.trim()), ["Base", "LoRA", "Difference (LoRA − base)"]);
  assert.equal(await panel.locator(".mass-bar.tuned").count(), 4, "a tuned bar per layer");
  assert.match(await text(panel, ".mass-key"), /LoRA \(tuned\)/);
  assert.equal(await panel.locator(".gate-table").isVisible(), false, "LoRA has no gates to show");
  await screenshot(page, "lora-4-attention");
});
