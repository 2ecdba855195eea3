/**
 * The sidebar chat as a new user meets it, in a real VS Code (code-server) in a real browser: the
 * conversation fills the view with the input pinned below it, the options fold away, nothing
 * overflows a narrow sidebar; a run trained while the chat is open shows up in its adapter list
 * by name, date and status; an adapter for another model is greyed out with the reason; answers
 * say which adapter and model wrote them; Clear can be undone; Enter sends from the Input field;
 * and after Change… the built-in demo model can be picked again. Screenshots go to out/e2e/chat-*.png.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import type { Frame, Page } from "playwright-core";
import { trainFromPalette, pickQuick, REPO, runCommand, screenshot, setTheme, waitFor, webviewFrame, workbenchForFile } from "./harness";

/** A model of another shape than the demo model (hidden size 64, 8 heads), and a run on disk that tuned it. */
let otherModel: string;

const wb = workbenchForFile("chat", "chat-", (opened) => {
  const golden = path.join(REPO, "test", "fixtures", "golden", "gqa");
  otherModel = path.join(opened.workspace, "gqa-model");
  fs.cpSync(path.join(golden, "model"), otherModel, { recursive: true });
  const run = path.join(opened.runsFolder, "gqa-other-20240101-120000");
  fs.cpSync(path.join(golden, "adapter"), run, { recursive: true });
  const spec = { kind: "train", model: otherModel, data: path.join(opened.workspace, "data.jsonl"), epochs: 1, batchSize: 8, maxLength: 64, validationShare: 0, seed: 0 };
  fs.writeFileSync(path.join(run, "run.json"), JSON.stringify({ name: "gqa-other", spec, status: "done", createdAt: "2024-01-01T12:00:00.000Z" }));
});

async function openChat(): Promise<Frame> {
  await runCommand(wb().page, "Excitor: Focus on Chat View");
  return webviewFrame(wb().page, "chat");
}

const busy = async (chat: Frame) => (await chat.locator("body").getAttribute("data-busy")) === "true";

/** Waits until the chat holds `n` answers and is idle again. */
async function answers(chat: Frame, n: number): Promise<void> {
  await waitFor(async () => ((await chat.locator(".turn.assistant").count()) === n && !(await busy(chat)) ? true : undefined), 120_000, `${n} answers`);
}

/** Types into the growing input and presses Enter (what sends). */
async function askWithEnter(chat: Frame, question: string): Promise<void> {
  await chat.locator("#prompt textarea").fill(question);
  await chat.locator("#prompt textarea").press("Enter");
}

interface Layout {
  view: number;
  messages: number;
  /** Page wider than the view (a horizontal scrollbar). */
  overflowX: number;
  /** Pairs of the view's stacked parts that overlap. */
  overlaps: string[];
}

/** Boxes of the chat's parts, measured in the webview. A string: this file is compiled without the DOM's types. */
async function layout(chat: Frame): Promise<Layout> {
  return (await chat.evaluate(`(() => {
    const parts = [...document.querySelectorAll("#app > *")].filter((e) => e.getBoundingClientRect().height > 0);
    const overlaps = [];
    for (let i = 1; i < parts.length; i++) {
      const a = parts[i - 1].getBoundingClientRect(), b = parts[i].getBoundingClientRect();
      if (a.bottom > b.top + 0.5) overlaps.push((parts[i - 1].id || parts[i - 1].className) + " / " + (parts[i].id || parts[i].className));
    }
    const last = parts[parts.length - 1].getBoundingClientRect();
    if (last.bottom > innerHeight + 0.5) overlaps.push("below the view: " + (parts[parts.length - 1].id || parts[parts.length - 1].className));
    const doc = document.documentElement;
    return {
      view: innerHeight,
      messages: document.getElementById("messages").getBoundingClientRect().height,
      overflowX: Math.max(doc.scrollWidth, document.body.scrollWidth) - doc.clientWidth,
      overlaps,
    };
  })()`)) as Layout;
}

/** Drags the sash on the sidebar's right edge so that the sidebar is `width` px wide. */
async function sidebarWidth(page: Page, width: number): Promise<number> {
  const bar = page.locator(".part.sidebar");
  const box = (await bar.boundingBox())!;
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + box.width, y);
  await page.mouse.down();
  await page.mouse.move(box.x + width, y, { steps: 8 });
  await page.mouse.up();
  return waitFor(async () => {
    const w = (await bar.boundingBox())!.width;
    return Math.abs(w - width) <= 4 ? w : undefined;
  }, 10_000, `a ${width} px sidebar`);
}

async function adapterEntries(chat: Frame): Promise<{ value: string; text: string; disabled: boolean; title: string }[]> {
  return chat.locator("#adapter vscode-option").evaluateAll((os) =>
    os.map((o) => ({ value: o.getAttribute("value") ?? "", text: (o.textContent ?? "").trim(), disabled: o.hasAttribute("disabled"), title: o.getAttribute("title") ?? "" })),
  );
}

const dropdownValue = (chat: Frame) => chat.locator("#adapter").evaluate((el) => (el as unknown as { value: string }).value);

async function setCompare(chat: Frame, on: boolean): Promise<void> {
  const checked = () => chat.locator("#compare").evaluate((c) => (c as unknown as { checked: boolean }).checked);
  if ((await checked()) !== on) await chat.locator("#compare").click();
  await waitFor(async () => ((await checked()) === on) || undefined, 5000, `Compare ${on ? "on" : "off"}`);
}

/** Opens or closes the options under their one toggle. */
async function options(chat: Frame, open: boolean): Promise<void> {
  if ((await chat.locator("#options").isVisible()) !== open) await chat.locator("#options-toggle").click();
  await waitFor(async () => ((await chat.locator("#options").isVisible()) === open || undefined), 5000, `the options to ${open ? "open" : "close"}`);
}

test("the conversation fills the chat view with the input pinned below; the options fold away; nothing overflows a 250–400 px sidebar", async (t) => {
  const { page } = wb();
  const chat = await openChat();
  // The view's title-bar action says what it is: an eye, "Show Attention Heatmap".
  const action = page.locator(".part.sidebar .pane-header", { hasText: "Chat" }).locator(".action-label.codicon-eye");
  assert.match((await action.getAttribute("aria-label")) ?? "", /^Show Attention Heatmap/);
  await askWithEnter(chat, "What is the name of the bird?");
  await answers(chat, 1);
  assert.equal(await chat.locator("#prompt textarea").inputValue(), "", "Enter sent the question and emptied the input");
  assert.equal((await chat.locator(".turn.assistant .who").textContent())?.trim(), "Model");
  assert.equal((await chat.locator(".turn.assistant .by").textContent())?.trim(), "built-in demo model, no adapter", "the answer says which model wrote it");
  // The options are folded: the Input field and the settings are out of the way.
  assert.equal(await chat.locator("#options").isVisible(), false);
  assert.equal(await chat.locator("#context").isVisible(), false);
  const folded = await layout(chat);
  assert.deepEqual(folded.overlaps, []);
  t.diagnostic(`options folded: conversation ${folded.messages} of ${folded.view} px`);
  assert.ok(folded.messages >= 0.6 * folded.view, `the conversation is most of the view (${folded.messages} of ${folded.view} px)`);
  await screenshot(page, "chat-1-conversation");

  // The input grows with its text, up to a limit, and stays below the conversation.
  const oneLine = (await chat.locator("#prompt textarea").boundingBox())!.height;
  await chat.locator("#prompt textarea").fill("line one\nline two\nline three");
  await chat.locator("#prompt textarea").dispatchEvent("input");
  const threeLines = await waitFor(async () => {
    const h = (await chat.locator("#prompt textarea").boundingBox())!.height;
    return h > oneLine + 20 ? h : undefined; // two more lines
  }, 5000, "the input to grow");
  await chat.locator("#prompt textarea").fill(Array.from({ length: 40 }, (_, i) => `line ${i}`).join("\n"));
  await chat.locator("#prompt textarea").dispatchEvent("input");
  await new Promise((r) => setTimeout(r, 300));
  const capped = (await chat.locator("#prompt textarea").boundingBox())!.height;
  assert.ok(capped > threeLines && capped < 0.35 * folded.view, `a long text grows the input only so far (${oneLine} → ${threeLines} → ${capped} px)`);
  await chat.locator("#prompt textarea").fill("");
  await chat.locator("#prompt textarea").dispatchEvent("input");

  // One toggle opens the Input field, the template and Compare, and a line with the sampling
  // settings that opens to their fields; the conversation keeps most of the view.
  await options(chat, true);
  for (const id of ["#context", "#template", "#compare", "#sampling"]) assert.ok(await chat.locator(id).isVisible(), `${id} is under Options`);
  assert.equal((await chat.locator("#sampling summary").textContent())?.trim(), "Sampling: temperature 0.7 · top-p 0.9 · 256 tokens");
  assert.equal(await chat.locator("#compare").getAttribute("disabled"), "", "with no adapter there is nothing to compare");
  const open = await layout(chat);
  assert.deepEqual(open.overlaps, []);
  t.diagnostic(`options open: conversation ${open.messages} of ${open.view} px`);
  assert.ok(open.messages >= 0.5 * open.view, `with the options open the conversation keeps ${open.messages} of ${open.view} px`);
  await chat.locator("#sampling summary").click();
  for (const id of ["#temperature", "#top-p", "#max-tokens"]) assert.ok(await chat.locator(id).isVisible(), `${id} is under Sampling`);
  const all = await layout(chat);
  assert.deepEqual(all.overlaps, []);
  t.diagnostic(`options and sampling open: conversation ${all.messages} of ${all.view} px`);
  assert.ok(all.messages >= 0.35 * all.view, `with the sampling fields open too the conversation keeps ${all.messages} of ${all.view} px`);
  await screenshot(page, "chat-2-options");

  for (const width of [250, 320, 400]) {
    const w = await sidebarWidth(page, width);
    await new Promise((r) => setTimeout(r, 300));
    const l = await layout(chat);
    t.diagnostic(`${w} px sidebar: conversation ${l.messages} of ${l.view} px, ${l.overflowX} px too wide`);
    assert.equal(l.overflowX, 0, `no horizontal scrollbar in a ${w} px sidebar`);
    assert.deepEqual(l.overlaps, [], `nothing overlaps in a ${w} px sidebar`);
    if (width === 250) await screenshot(page, "chat-3-narrow");
  }
  await chat.locator("#sampling summary").click();
  await options(chat, false);
});

test("a run trained while the chat is open appears in its adapter list, live, as name · date · status; an adapter for another model is greyed out with the reason", async () => {
  const { page } = wb();
  const chat = await openChat();
  // A mark in the webview's page: if the view were rebuilt, it would be gone.
  await chat.evaluate("window.sameView = true");
  const other = (await adapterEntries(chat)).find((e) => e.text.startsWith("gqa-other · "));
  assert.ok(other, "the run for the other model is listed");
  assert.match(other.text, /^gqa-other · 1 Jan 2024 \d\d:\d\d · done — for gqa-model$/, "greyed out, it says which model it is for");
  assert.equal(other.disabled, true, "it cannot be chosen for the demo model");
  assert.match(other.title, /^not for built-in demo model: it was trained for a model with hidden size 64, 8 heads; this model has hidden size 128, 4 heads/);
  // Clicking it changes nothing.
  await chat.locator("#adapter").click();
  await chat.locator("#adapter vscode-option", { hasText: "gqa-other" }).click({ force: true });
  await page.keyboard.press("Escape");
  assert.equal(await dropdownValue(chat), "");

  await trainFromPalette(page, "Quick");
  const entry = async () => (await adapterEntries(chat)).find((e) => e.text.startsWith("train-quick · "));
  const running = await waitFor(async () => {
    const e = await entry();
    return e?.text.endsWith("· running") ? e : undefined;
  }, 60_000, "the running run in the adapter list");
  assert.equal(running.disabled, true, "a run still training cannot be chosen yet");
  const done = await waitFor(async () => {
    const e = await entry();
    return e?.text.endsWith("· done") ? e : undefined;
  }, 300_000, "the finished run in the adapter list");
  assert.match(done.text, /^train-quick · \d{1,2} [A-Z][a-z]{2} \d\d:\d\d · done$/);
  assert.equal(done.disabled, false);
  assert.equal(await chat.evaluate("window.sameView"), true, "the list updated in the open view, which was not rebuilt");
  // The demo model's adapters come before the greyed-out one.
  const order = (await adapterEntries(chat)).map((e) => e.text.split(" · ")[0]);
  assert.ok(order.indexOf("train-quick") < order.indexOf("gqa-other"), order.join(", "));
  await chat.locator("#adapter").click();
  await screenshot(page, "chat-3b-adapter-list");
  await page.keyboard.press("Escape");
  await runCommand(page, "View: Close All Editors");
});

test("answers say which adapter and model wrote them, with Compare too; Enter in the Input field sends", async (t) => {
  const { page } = wb();
  const chat = await openChat();
  const adapter = (await adapterEntries(chat)).find((e) => e.text.startsWith("train-quick · "))!;
  await chat.locator("#adapter").click();
  await chat.locator("#adapter vscode-option", { hasText: "train-quick" }).click();
  await waitFor(async () => ((await dropdownValue(chat)) === adapter.value ? true : undefined), 10_000, "the adapter to be chosen");
  const before = await chat.locator(".turn.assistant").count();
  await options(chat, true);
  await setCompare(chat, true);
  await chat.locator("#prompt textarea").fill("What did Sue find?");
  await chat.locator("#context textarea").fill("One day, a brave bird named Sue went to the town. Sue saw a red kite under a big tree.");
  await chat.locator("#context textarea").press("Enter");
  await answers(chat, before + 2);
  const user = chat.locator(".turn.user").last();
  assert.equal((await user.locator(".text").textContent())?.trim(), "What did Sue find?");
  assert.match((await user.locator(".context").textContent()) ?? "", /red kite/, "the Input went with the question");
  assert.equal(await chat.locator("#context textarea").inputValue(), "One day, a brave bird named Sue went to the town. Sue saw a red kite under a big tree.", "the Input stays for the next question");
  const who = (await chat.locator(".turn.assistant .who").allTextContents()).slice(-2);
  const by = (await chat.locator(".turn.assistant .by").allTextContents()).slice(-2);
  assert.deepEqual(who, ["Tuned", "Base model"]);
  const name = adapter.text.replace(/ · done$/, "");
  assert.deepEqual(by, [`${name} on built-in demo model`, "built-in demo model"]);
  const l = await layout(chat);
  assert.deepEqual(l.overlaps, []);
  t.diagnostic(`compare answers, options open: conversation ${l.messages} of ${l.view} px`);
  assert.ok(l.messages >= 0.5 * l.view, `with Compare on and the options open the conversation keeps ${l.messages} of ${l.view} px`);
  await screenshot(page, "chat-4-compare-options");
  await options(chat, false);
  await chat.locator("#messages").evaluate((m) => ((m as unknown as { scrollTop: number }).scrollTop = 1e9));
  // Folded, a line over the input says the Input text goes along.
  assert.match((await chat.locator("#attached").textContent()) ?? "", /^Input: One day, a brave bird/);
  await screenshot(page, "chat-5-compare");
  // The same in high contrast: borders and links come from the theme.
  await setTheme(page, "Dark High Contrast");
  await waitFor(async () => ((await chat.locator("body").getAttribute("class"))?.includes("vscode-high-contrast") ? true : undefined), 20_000, "the high-contrast theme in the chat");
  await screenshot(page, "chat-5b-compare-high-contrast");
  await setTheme(page, "Light Modern");
});

test("Clear empties the conversation and Undo brings it back", async () => {
  const chat = await openChat();
  const turns = await chat.locator(".turn .text").allTextContents();
  assert.ok(turns.length >= 4);
  await chat.locator("#clear").click();
  await waitFor(async () => ((await chat.locator(".turn").count()) === 0 ? true : undefined), 10_000, "an empty conversation");
  assert.ok(await chat.locator("#undo").isVisible(), "an Undo is offered");
  await screenshot(wb().page, "chat-6-cleared");
  await chat.locator("#undo-clear").click();
  await waitFor(async () => ((await chat.locator(".turn").count()) === turns.length ? true : undefined), 10_000, "the conversation back");
  assert.deepEqual(await chat.locator(".turn .text").allTextContents(), turns);
  assert.equal(await chat.locator("#undo").isVisible(), false, "nothing left to undo");
  // The restored conversation is kept like any other: it is there after the view is rebuilt.
  await runCommand(wb().page, "View: Show Explorer");
  await waitFor(async () => ((await chat.locator("body").count().catch(() => 0)) === 0 ? true : undefined), 20_000, "the chat webview to go away");
  const again = await openChat();
  await waitFor(async () => ((await again.locator(".turn").count()) === turns.length ? true : undefined), 20_000, "the conversation after re-showing the view");
});

test("Change… offers the built-in demo model and the models runs were trained on; the adapter list follows the model", async () => {
  const { page } = wb();
  const chat = await openChat();
  await chat.locator("#change-model").click();
  const rows = page.locator(".quick-input-widget .quick-input-list .monaco-list-row");
  // A row's first .label-name is its label (its detail line has one too). The command palette that
  // opened the chat may still be fading out with its own rows: wait for the picker's last entry.
  const labels = await waitFor(async () => {
    const l = await rows.evaluateAll((rs) => rs.map((r) => r.querySelector(".label-name")?.textContent?.trim()));
    return l.includes("Browse for a .gguf file…") ? l : undefined;
  }, 20_000, "the model picker's rows");
  assert.deepEqual(labels, ["Built-in demo model", "gqa-model", "Browse…", "Browse for a .gguf file…"]);
  await pickQuick(page, "gqa-model");
  await waitFor(async () => ((await chat.locator(".model-label").textContent()) === "gqa-model" ? true : undefined), 20_000, "the other model to be chosen");
  // The adapter trained on the demo model no longer fits and is let go; the other run's now fits.
  assert.equal(await dropdownValue(chat), "");
  const forOther = await adapterEntries(chat);
  assert.equal(forOther.find((e) => e.text.startsWith("gqa-other"))?.disabled, false);
  assert.equal(forOther.find((e) => e.text.startsWith("train-quick"))?.disabled, true);
  await screenshot(page, "chat-7-other-model");

  await chat.locator("#change-model").click();
  await pickQuick(page, "Built-in demo model");
  await waitFor(async () => ((await chat.locator(".model-label").textContent()) === "built-in demo model" ? true : undefined), 20_000, "the built-in demo model again");
  const forDemo = await adapterEntries(chat);
  assert.equal(forDemo.find((e) => e.text.startsWith("train-quick"))?.disabled, false);
  assert.equal(forDemo.find((e) => e.text.startsWith("gqa-other"))?.disabled, true);
  // And it answers again.
  const before = await chat.locator(".turn.assistant").count();
  await askWithEnter(chat, "Who is Sue?");
  await answers(chat, before + 1);
  assert.equal((await chat.locator(".turn.assistant .by").last().textContent())?.trim(), "built-in demo model, no adapter");
});
