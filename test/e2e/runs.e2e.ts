/**
 * A new user's first hour with runs, in a real VS Code (code-server) in a real browser: a bad
 * dataset chosen from the Explorer is refused before any run exists; the Custom preset takes
 * every default with Enter and ends on a summary; a second training asks first; a window reload
 * mid-run brings the training tab back and offers to resume the interrupted run, which goes on
 * with its elapsed time. Screenshots of each step go to out/e2e/.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import type { Frame, Page } from "playwright-core";
import { clickRow, trainFromPalette, pickQuick, runCommand, screenshot, waitFor, webviewFrame, workbenchForFile } from "./harness";

const wb = workbenchForFile("runs", "runs-");

const text = async (f: Frame, selector: string) => (await f.locator(selector).first().textContent()) ?? "";
const runFolders = () => (fs.existsSync(wb().runsFolder) ? fs.readdirSync(wb().runsFolder) : []);
const trainingTabs = (page: Page) => page.locator(".tabs-container .tab", { hasText: "Training:" });

/** A notification (toast, or in the notification center once VS Code has tucked it away) with this text. */
async function notification(page: Page, has: string | RegExp, timeoutMs: number) {
  const toast = page.locator(".notifications-toasts .notification-toast", { hasText: has }).first();
  return waitFor(
    async () => {
      if (await toast.isVisible()) return toast;
      const listed = page.locator(".notifications-center .notification-list-item", { hasText: has }).first();
      return (await listed.isVisible()) ? listed : undefined;
    },
    timeoutMs,
    `a notification saying ${has}`,
  );
}

test("a bad dataset chosen from the Explorer: the error names the line, Open File goes there, and no run is made", async () => {
  const { page } = wb();
  // Once the palette lists Excitor's commands, its menu entries are registered too.
  await runCommand(page, "Excitor: Focus on Runs View");
  fs.writeFileSync(path.join(wb().workspace, "broken.jsonl"), '{"instruction":"a","output":"b"}\n{"instruction":"c","output":"d"}\n{"instruction": oops}\n');
  await runCommand(page, "View: Show Explorer");
  const file = page.locator(".explorer-folders-view .monaco-list-row", { hasText: "broken.jsonl" }).first();
  await file.waitFor({ timeout: 20_000 });
  await file.click({ button: "right" });
  // The context menu entry says whose it is.
  const entry = page.locator(".context-view .monaco-menu .action-label", { hasText: "Excitor: Train Adapter…" }).first();
  await entry.waitFor({ timeout: 10_000 });
  await screenshot(page, "runs-1-explorer-entry");
  await entry.click();
  await pickQuick(page, "Built-in demo model");
  const toast = await notification(page, "broken.jsonl:3", 30_000);
  assert.match((await toast.textContent()) ?? "", /cannot train on this dataset: .*broken\.jsonl:3: malformed JSON/);
  // Refused at once: no preset to pick, no run, no training tab.
  await page.locator(".quick-input-widget").waitFor({ state: "hidden", timeout: 10_000 }); // the wizard ended
  assert.deepEqual(runFolders(), []);
  assert.equal(await trainingTabs(page).count(), 0);
  await screenshot(page, "runs-1-dataset-error");
  await toast.locator(".monaco-button", { hasText: "Open File" }).click();
  await page.locator(".tab.active", { hasText: "broken.jsonl" }).waitFor({ timeout: 20_000 });
  await page.locator(".statusbar", { hasText: "Ln 3," }).waitFor({ timeout: 20_000 });
  await runCommand(page, "Excitor: Focus on Runs View");
  await page.locator(".welcome-view-content", { hasText: "No training runs yet" }).waitFor({ timeout: 10_000 });
  await runCommand(page, "View: Close All Editors");
});

test("the Custom preset: Enter keeps every prefilled value, a summary lists them all, one is edited there, and Start training starts", async () => {
  const { page } = wb();
  await trainFromPalette(page, "Custom…");
  const title = page.locator(".quick-input-widget .quick-input-title");
  const input = page.locator(".quick-input-widget input.input");
  // The method first: Excitor is the default, listed first; LoRA and full fine-tuning follow.
  await waitFor(async () => ((await title.textContent())?.includes("what to train") ? true : undefined), 10_000, "the method page");
  // A row's first .label-name is its label (its detail line has one too).
  const methods = () => page.locator(".quick-input-widget .quick-input-list .monaco-list-row").evaluateAll((rs) => rs.map((r) => r.querySelector(".label-name")?.textContent?.trim()));
  await waitFor(async () => ((await methods()).length === 3 ? true : undefined), 10_000, "three methods");
  assert.deepEqual(await methods(), ["Excitor", "LoRA", "Full fine-tuning"]);
  await pickQuick(page, "Excitor");
  // Ten fields, each prefilled: Enter accepts each as it is.
  for (let i = 1; i <= 10; i++) {
    await waitFor(async () => ((await title.textContent())?.includes(`(${i}/10)`) ? true : undefined), 10_000, `field ${i} of 10`);
    if (i === 7) assert.equal(await input.inputValue(), "256", "max length: the setting's 512 cut to the demo model's context");
    await page.keyboard.press("Enter");
  }
  await waitFor(async () => ((await title.textContent())?.includes("summary") ? true : undefined), 10_000, "the summary page");
  const row = (label: string) => page.locator(".quick-input-list .monaco-list-row", { hasText: label }).first();
  for (const label of ["Start training", "Edit a value…", "Cancel", "Method", "Prompts K", "Rank r", "Epochs", "Max steps", "Learning rate", "Batch size", "Max length", "Validation share", "Seed", "Adapted layers"])
    await row(label).waitFor({ timeout: 5_000 });
  assert.match((await row("Max length").textContent()) ?? "", /256/);
  assert.match((await row("Method").textContent()) ?? "", /Method\s*Excitor\b/);
  // Custom starts from the Standard preset's plan for this data: K 30, 480 steps over 10 epochs at 3e-2.
  assert.match((await row("Prompts K").textContent()) ?? "", /Prompts K\s*30\b/);
  assert.match((await row("Epochs").textContent()) ?? "", /Epochs\s*10\b/);
  assert.match((await row("Learning rate").textContent()) ?? "", /Learning rate\s*0\.03\b/);
  await screenshot(page, "runs-2-custom-summary");
  // Change one value from the summary: many epochs, so that the run outlasts the next tests.
  await clickRow(page, row("Edit a value…"));
  await pickQuick(page, "Epochs");
  await input.fill("60");
  await page.keyboard.press("Enter");
  await waitFor(async () => ((await title.textContent())?.includes("summary") ? true : undefined), 10_000, "the summary again");
  assert.match((await row("Epochs").textContent()) ?? "", /60/);
  await row("Start training").click();
  const panel = await webviewFrame(page, "training", 30_000, "train-custom");
  await waitFor(async () => (/^[1-9]\d* \//.test(await text(panel, '[data-stat="step"]')) ? true : undefined), 180_000, "the custom run to take steps");
  assert.equal(runFolders().length, 1);
  const spec = JSON.parse(fs.readFileSync(path.join(wb().runsFolder, runFolders()[0], "run.json"), "utf8")).spec;
  assert.equal(spec.epochs, 60);
  assert.equal(spec.maxLength, 256);
  // The tab says which run and when it started.
  const tab = (await trainingTabs(page).first().textContent()) ?? "";
  assert.match(tab, /Training: train-custom \(\d{4}-\d\d-\d\d \d\d:\d\d\)/);
});

test("a second training while one runs asks first, saying both will be slower", async () => {
  const { page } = wb();
  await runCommand(page, "Excitor: Run Demo");
  const dialog = page.locator(".monaco-dialog-box");
  await dialog.waitFor({ timeout: 20_000 });
  const said = (await dialog.textContent()) ?? "";
  assert.match(said, /“train-custom” is training\. Start another\?/);
  assert.match(said, /Both will be slower \(they share the CPU cores\)/);
  await screenshot(page, "runs-3-second-training");
  await dialog.locator(".monaco-button", { hasText: "Cancel" }).click();
  await dialog.waitFor({ state: "detached", timeout: 10_000 });
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(runFolders().length, 1, "no second run was started");
});

test("a window reload mid-run: the training tab comes back, the run is reported interrupted with Resume, and Resume goes on from its checkpoint with its elapsed time", async () => {
  const { page } = wb();
  const stepOf = async (f: Frame) => Number(/^(\d+) \//.exec(await text(f, '[data-stat="step"]'))?.[1] ?? 0);
  // "42s", "3m05s", "1h02m" (cli/format.ts)
  const seconds = (s: string) => [...s.matchAll(/(\d+)([hms])/g)].reduce((t, [, n, unit]) => t + Number(n) * { h: 3600, m: 60, s: 1 }[unit as "h" | "m" | "s"], 0);
  let panel = await webviewFrame(page, "training", 30_000, "train-custom");
  await waitFor(async () => ((await stepOf(panel)) >= 3 ? true : undefined), 120_000, "a few steps before the reload");
  await page.reload();
  await page.locator(".monaco-workbench").waitFor({ timeout: 60_000 });
  // A new extension host starts and the old engine writes its checkpoint first: minutes on a busy machine.
  const note = await notification(page, "interrupted", 300_000);
  assert.match((await note.textContent()) ?? "", /the training “train-custom” was interrupted when the window reloaded or closed/);
  await screenshot(page, "runs-4-interrupted");
  // The tab is back, showing where the run got to.
  panel = await webviewFrame(page, "training", 60_000, "train-custom");
  await waitFor(async () => ((await text(panel, "#run-status")) === "interrupted" ? true : undefined), 60_000, "the restored panel to show the run interrupted");
  const stoppedAt = await stepOf(panel);
  const elapsedBefore = seconds(await text(panel, '[data-stat="elapsed"]'));
  assert.ok(stoppedAt >= 3 && elapsedBefore > 0, `stopped at step ${stoppedAt} after ${elapsedBefore} s`);
  await note.locator(".monaco-button", { hasText: "Resume" }).click();
  await waitFor(async () => ((await text(panel, "#run-status")) === "running" && (await stepOf(panel)) > stoppedAt ? true : undefined), 120_000, "the resumed run to go on");
  const elapsedAfter = seconds(await text(panel, '[data-stat="elapsed"]'));
  assert.ok(elapsedAfter > elapsedBefore, `elapsed time goes on (${elapsedBefore} s before, ${elapsedAfter} s after)`);
  const start = JSON.parse(fs.readFileSync(path.join(wb().runsFolder, runFolders()[0], "metrics.jsonl"), "utf8").trim().split("\n").filter((l) => l.includes('"type":"start"')).at(-1)!);
  assert.ok(start.resumedFromStep > 0, "resumed from a checkpoint");
  await screenshot(page, "runs-5-resumed");
  // Every chart text (titles, ticks, legends) lies inside its chart and clear of the title.
  const misplaced = await panel.evaluate(`[...document.querySelectorAll("svg.chart")].flatMap((svg) => {
    const vb = svg.viewBox.baseVal;
    const t = svg.querySelector(".chart-title").getBBox();
    return [...svg.querySelectorAll("text")].filter((el) => {
      const b = el.getBBox();
      const outside = b.x < 0 || b.y < 0 || b.x + b.width > vb.width || b.y + b.height > vb.height;
      const onTitle = !el.classList.contains("chart-title") && b.x < t.x + t.width && t.x < b.x + b.width && b.y < t.y + t.height && t.y < b.y + b.height;
      return outside || onTitle;
    }).map((el) => el.textContent);
  })`); // a string: this file is compiled without the DOM's types
  assert.deepEqual(misplaced, []);
  await runCommand(page, "Excitor: Stop Training");
  await waitFor(async () => ((await text(panel, "#run-status")) === "stopped" ? true : undefined), 60_000, "the run to stop");
});

test("Run Demo opens its before/after report when it ends, and the finish notification offers Open Report", async () => {
  const { page } = wb();
  await runCommand(page, "View: Close All Editors");
  await runCommand(page, "Excitor: Run Demo");
  // No other run trains now: no question, the demo starts at once.
  const preview = page.locator(".tabs-container .tab", { hasText: "Preview report.md" });
  await preview.waitFor({ timeout: 600_000 });
  const note = await notification(page, "finished", 30_000);
  await note.locator(".monaco-button", { hasText: "Open Report" }).waitFor({ timeout: 5_000 });
  assert.equal(await page.locator(".monaco-dialog-box").count(), 0);
  // The preview shows the report itself.
  await waitFor(
    async () => {
      for (const f of page.frames()) if (((await f.locator("h1").first().textContent({ timeout: 500 }).catch(() => "")) ?? "").includes("Excitor demo report")) return true;
      return undefined;
    },
    120_000,
    "the report in the preview",
  );
  await screenshot(page, "runs-6-demo-report");
  const demo = runFolders().find((d) => d.startsWith("demo-"))!;
  const spec = JSON.parse(fs.readFileSync(path.join(wb().runsFolder, demo, "run.json"), "utf8")).spec;
  const start = JSON.parse(fs.readFileSync(path.join(wb().runsFolder, demo, "metrics.jsonl"), "utf8").split("\n").find((l) => l.includes('"type":"start"'))!);
  assert.deepEqual([spec.epochs, spec.learningRate, spec.batchSize], [start.epochs, start.learningRate, start.effectiveBatch], "the Runs view's numbers are the demo's");
});
