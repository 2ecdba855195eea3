/**
 * The attention panel on a real chat-sized sequence, in a real VS Code (code-server) in a real
 * browser: Show Attention from the palette asks which adapter; with none, only the base model is
 * measured and the panel says so; after training, a 151-token instruction + input + response map
 * fits the panel, keeps every token's label reachable (token strip at fit, axis labels when
 * zoomed in), marks instruction, input and response, shows per-layer percentage bars for base and
 * tuned, keeps its readout in view while the keyboard cursor travels, and exports a clean SVG and
 * PNG. Screenshots go to out/e2e/attention-*.png.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import type { Frame, Page } from "playwright-core";
import { trainFromPalette, ARTIFACTS, pickQuick, runCommand, screenshot, setTheme, typeInFileDialog, waitFor, webviewFrame, workbenchForFile } from "./harness";

const wb = workbenchForFile("attention", "attention-");

// 151 tokens with the demo model's tokenizer: 45 of Alpaca template (BOS included), 46 of
// instruction, 54 of input, 6 of response.
const INSTRUCTION = "Read the story below carefully, then tell me the name of the bird, the colour of the kite it found, and the place where it lived.";
const INPUT = "One day, a brave bird named Sue went to the town. The bird lived near the town. One morning, Sue saw a red kite under a big tree. Sue felt glad and smiled. Sue showed the red kite to Tom. It was the best day ever.";
const RESPONSE = " The bird was named Sue.";

const text = async (f: Frame, selector: string) => ((await f.locator(selector).first().textContent()) ?? "").trim();
/** The labels of the quick pick's rows on screen (the widget keeps earlier pickers' rows hidden). */
const quickRows = (page: Page) =>
  page.locator(".quick-input-widget .quick-input-list .monaco-list-row").evaluateAll((rows) =>
    rows.filter((r) => (r as unknown as { offsetParent: unknown }).offsetParent !== null).map((r) => r.querySelector(".label-name")?.textContent ?? ""),
  );

/** Show Attention from the palette: answers the adapter question with `adapter`, then the instruction. */
async function showAttention(page: Page, adapter: string, instruction: string): Promise<{ offered: string[]; panel: Frame }> {
  await runCommand(page, "Excitor: Show Attention");
  const title = () => page.locator(".quick-input-widget .quick-input-title").textContent().catch(() => "");
  await waitFor(async () => ((await title())?.endsWith("which adapter?") ? true : undefined), 20_000, "the adapter question");
  const offered = (await quickRows(page)).map((s) => s.trim());
  await pickQuick(page, adapter);
  const input = page.locator(".quick-input-widget input.input");
  await waitFor(async () => ((await title())?.endsWith("Show Attention") ? true : undefined), 10_000, "the instruction box");
  await input.fill(instruction);
  await page.keyboard.press("Enter");
  const panel = await webviewFrame(page, "attention");
  await waitFor(async () => ((await panel.locator("#heatmap-tip").textContent())?.includes("query") ? true : undefined), 120_000, "the heatmap");
  return { offered, panel };
}

test("Show Attention asks which adapter; with none, only the base model is shown and the panel says so", async () => {
  const { page } = wb();
  const { offered, panel } = await showAttention(page, "No adapter (base model only)", "What is the name of the bird?");
  assert.deepEqual(offered, ["No adapter (base model only)"], "no runs and no chat adapter yet: the base model is the one choice");
  assert.match(await text(panel, "#mass-note"), /^No adapter: only the base model is shown/);
  assert.equal(await panel.locator(".mass-bar.tuned").count(), 0, "no tuned bars");
  const base = await panel.locator(".mass-bar.base .mass-pct").allTextContents();
  assert.equal(base.length, 4, "one base bar per layer of the demo model");
  for (const p of base) assert.match(p, /^\d+\.\d %$/);
  assert.equal(await panel.locator("#mode").isVisible(), false, "no Excitor / difference modes without an adapter");
  assert.match(await text(panel, "#heatmap-tip"), /\(base model\)$/);
  await panel.locator("#mass").scrollIntoViewIfNeeded();
  await screenshot(page, "attention-1-no-adapter");
  await runCommand(page, "View: Close All Editors");
});

test("train a quick adapter to look at", async () => {
  const { page } = wb();
  await trainFromPalette(page, "Quick");
  const training = await webviewFrame(page, "training");
  await waitFor(async () => ((await text(training, "#run-status")) === "done" ? true : undefined), 300_000, "the run to finish");
  await runCommand(page, "View: Close All Editors");
});

test("a 151-token map: fits the panel, every label reachable, spans marked, bars in percent, readout in view, clean export", async () => {
  const { page } = wb();
  const { offered, panel } = await showAttention(page, "train-quick", "What is the name of the bird?");
  assert.equal(offered.length, 2, `the run's adapter and the base model are offered (${offered.join(" | ")})`);
  assert.match(offered[0], /^train-quick/);
  assert.equal(offered[1], "No adapter (base model only)");
  // The long sequence, through the panel's own form.
  await panel.locator("#att-prompt input").fill(INSTRUCTION);
  await panel.locator("#att-input textarea").fill(INPUT);
  await panel.locator("#att-response textarea").fill(RESPONSE);
  await panel.locator("#analyze").click();
  await waitFor(async () => ((await panel.locator("#token-strip .tok").count()) >= 150 && (await panel.locator("body").getAttribute("data-busy")) === "false" ? true : undefined), 120_000, "the 151-token map");
  assert.equal(await panel.locator("#token-strip .tok").count(), 151);

  // Fit: the whole map is as wide as the panel, and the page never scrolls sideways.
  const overflow = () => panel.evaluate(`(() => { const d = document.documentElement, m = document.getElementById("map-wrap"); return { page: d.scrollWidth - d.clientWidth, map: m.scrollWidth - m.clientWidth }; })()`) as Promise<{ page: number; map: number }>;
  const fit = await overflow();
  assert.equal(fit.page, 0, "no horizontal scroll on the page");
  assert.equal(fit.map, 0, "at fit the map is no wider than its box");
  assert.match(await text(panel, ".zoom-info"), /^106 × 106 tokens · \d+ px per token \(fit\)$/, "the template's 45 tokens are hidden by default");

  // Labels: at fit the cells are too small for axis labels, so the token strip lists every token.
  assert.ok(await panel.locator("#token-strip").isVisible(), "the token strip is shown");
  const strip = await panel.locator("#token-strip .tok").allTextContents();
  assert.deepEqual(strip.slice(-6), ["The", "bird", "was", "named", "Sue", "."], "the strip reads the sequence in order");
  // Focusing a token outlines it and reads it out.
  await panel.locator("#token-strip .tok[tabindex='0']").focus();
  await page.keyboard.press("ArrowRight");
  assert.match(await text(panel, "#heatmap-tip"), /^token \d+ ".*" \((instruction|input|response)\): the response gives it base \d+\.\d\d %, Excitor \d+\.\d\d % of its attention/);

  // Spans: instruction, input and response, each with its token count, and the hidden template.
  const spans = await panel.locator("#spans-legend .span-item").allTextContents();
  assert.deepEqual(spans, ["Instruction · 46 tokens", "Input · 54 tokens", "Response · 6 tokens", "Template · 45 tokens (hidden)"]);
  // The template can be shown (dimmed) and hidden again.
  await panel.locator("#hide-template").click();
  await waitFor(async () => ((await text(panel, ".zoom-info")).startsWith("151 × 151 tokens") ? true : undefined), 10_000, "the template shown");
  assert.equal(await text(panel, "#spans-legend .kind-template"), "Template · 45 tokens (dimmed)");
  await panel.locator("#hide-template").click();
  await waitFor(async () => ((await text(panel, ".zoom-info")).startsWith("106 × 106 tokens") ? true : undefined), 10_000, "the template hidden again");

  // Per-layer bars with percentages, base and tuned, explained in one line.
  assert.match(await text(panel, "#mass-note"), /^$/);
  for (const cls of ["base", "tuned"]) {
    const pcts = await panel.locator(`.mass-bar.${cls} .mass-pct`).allTextContents();
    assert.equal(pcts.length, 4, `${cls}: a bar per layer`);
    for (const p of pcts) assert.match(p, /^\d+\.\d %$/);
  }
  assert.ok((await panel.locator(".mass-row").allTextContents()).join(" ").includes("adapted"));
  await screenshot(page, "attention-2-151-tokens-fit");

  // Zoom in until the labels go on the axes: the map scrolls inside its box, the page still does not.
  await panel.locator("#zoom-in").click();
  await panel.locator("#zoom-in").click();
  await waitFor(async () => ((await panel.locator("#token-strip").isVisible()) ? undefined : true), 10_000, "axis labels instead of the strip");
  const zoomed = await overflow();
  assert.equal(zoomed.page, 0, "zoomed in, the page still does not scroll sideways");
  assert.ok(zoomed.map > 0, "zoomed in, the map scrolls inside its box");
  await screenshot(page, "attention-3-151-tokens-labels");

  // The keyboard readout stays in view while the cursor travels down a map taller than the window.
  const readoutInView = async (when: string) => {
    const v = (await panel.evaluate(`(() => { const t = document.getElementById("heatmap-tip").getBoundingClientRect(); return { top: t.top, bottom: t.bottom, height: window.innerHeight }; })()`)) as { top: number; bottom: number; height: number };
    assert.ok(v.top >= 0 && v.bottom <= v.height, `${when}: the readout is in the window (${JSON.stringify(v)})`);
  };
  await panel.locator("#heatmap").focus();
  for (let i = 0; i < 110; i++) await page.keyboard.press("ArrowUp");
  await readoutInView("at the top row");
  assert.match(await text(panel, "#heatmap-tip"), /^query 34 "R" \(instruction\)/);
  for (let i = 0; i < 110; i++) await page.keyboard.press("ArrowDown");
  for (let i = 0; i < 60; i++) await page.keyboard.press("ArrowRight");
  await readoutInView("at the bottom row");
  assert.match(await text(panel, "#heatmap-tip"), /^query 150 "\." \(response\) → key \d+ ".*" \(input\)/, "the last row, 60 columns right: the response's last token looking at the input");
  await screenshot(page, "attention-4-keyboard-readout");
  // High contrast: the map, its span bars and labels take the theme's colours.
  await panel.locator("#zoom-fit").click();
  await panel.locator("#zoom-in").click();
  await setTheme(page, "Dark High Contrast");
  await panel.evaluate(`document.getElementById("spans-legend").scrollIntoView()`);
  await screenshot(page, "attention-4b-high-contrast");
  await panel.locator("#mass").scrollIntoViewIfNeeded();
  await screenshot(page, "attention-4c-high-contrast-bars");
  await setTheme(page, "Light Modern");

  // Export: a clean SVG (title, every label, span legend, colour scale, no cursor) and a PNG.
  const svgFile = path.join(wb().workspace, "attention.svg");
  await exportTo(page, panel, "#export-svg", svgFile);
  const svg = fs.readFileSync(svgFile, "utf8");
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.ok(svg.includes(">Layer 3, mean over heads, with the Excitor adapter</text>"), "the title is on the picture");
  const labels = [...svg.matchAll(/<text class="label"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
  assert.equal(labels.length, 2 * 106, "every shown token is labelled on both axes");
  for (const word of ["story", "bird", "kite", "named", "Sue"]) assert.ok(labels.includes(word), `the label "${word}"`);
  for (const legend of ["Instruction (46)", "Input (54)", "Response (6)"]) assert.ok(svg.includes(legend), legend);
  assert.ok(svg.includes(">100 %</text>"), "the colour scale");
  assert.ok(!/<rect[^>]*stroke/.test(svg), "no cursor box");
  const pngFile = path.join(wb().workspace, "attention.png");
  await exportTo(page, panel, "#export-png", pngFile);
  const png = fs.readFileSync(pngFile);
  assert.equal(png.subarray(1, 4).toString(), "PNG");
  const [w, h] = [png.readUInt32BE(16), png.readUInt32BE(20)];
  assert.ok(w >= 106 * 12 + 88 && h >= 106 * 12 + 88, `the PNG is drawn at a readable size (${w}×${h})`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  fs.copyFileSync(pngFile, path.join(ARTIFACTS, "attention-5-export.png"));
});

/** Clicks an export button and saves through VS Code's file dialog to `file`. */
async function exportTo(page: Page, panel: Frame, button: string, file: string): Promise<void> {
  await panel.locator(button).click();
  await typeInFileDialog(page, file);
  await waitFor(
    async () => {
      if (fs.existsSync(file)) return true;
      const ok = page.locator(".quick-input-widget .monaco-button", { hasText: /^(OK|Export)$/ }).first();
      if (await ok.isVisible()) await ok.click().catch(() => {});
      await new Promise((r) => setTimeout(r, 1000));
      return fs.existsSync(file) || undefined;
    },
    30_000,
    `the exported ${path.basename(file)}`,
  );
}
