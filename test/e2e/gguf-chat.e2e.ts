/**
 * A GGUF base model in the editor, as a user with Ollama meets it: the chat's Change… lists the
 * GGUF files of the workspace and Ollama's models (by their Ollama names, from a manifest whose
 * blob is the stories260K Q8_0 fixture) with their quantization and size; picking Ollama's one
 * starts the engine on the blob and the chat answers with it, labelled with its Ollama name.
 * Screenshots go to out/e2e/gguf-chat-*.png.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { pickQuick, REPO, runCommand, screenshot, waitFor, webviewFrame, workbenchForFile } from "./harness";

const GGUF = path.join(REPO, "test", "fixtures", "stories260k", "gguf");
const DIGEST = "4f8e1c0d".repeat(8);

const wb = workbenchForFile("gguf-chat", "gguf-chat-", (opened) => {
  // code-server runs with HOME beside the workspace (harness.ts): Ollama's models go there.
  const models = path.join(path.dirname(opened.workspace), "home", ".ollama", "models");
  fs.mkdirSync(path.join(models, "blobs"), { recursive: true });
  fs.copyFileSync(path.join(GGUF, "stories260K-q8_0.gguf"), path.join(models, "blobs", `sha256-${DIGEST}`));
  const manifest = path.join(models, "manifests", "registry.ollama.ai", "library", "llama3.2", "3b");
  fs.mkdirSync(path.dirname(manifest), { recursive: true });
  fs.writeFileSync(manifest, JSON.stringify({ schemaVersion: 2, layers: [{ mediaType: "application/vnd.ollama.image.model", digest: `sha256:${DIGEST}`, size: 489152 }] }));
  fs.copyFileSync(path.join(GGUF, "stories260K-f32.v3.gguf"), path.join(opened.workspace, "stories-f32.gguf"));
});

test("Change… lists the workspace's and Ollama's GGUF models with quantization and size; the chat answers with the one picked", async () => {
  const { page } = wb();
  await runCommand(page, "Excitor: Focus on Chat View");
  const chat = await webviewFrame(page, "chat");
  await chat.locator("#change-model").click();
  const rows = page.locator(".quick-input-widget .quick-input-list .monaco-list-row");
  const texts = await waitFor(async () => {
    const t = await rows.allTextContents();
    return t.some((x) => x.includes("Browse for a .gguf file")) ? t : undefined;
  }, 30_000, "the model picker's rows");
  await screenshot(page, "gguf-chat-1-picker");
  const ollamaRow = texts.find((t) => t.includes("llama3.2:3b"));
  assert.ok(ollamaRow, texts.join(" | "));
  for (const part of ["Q8_0 · 478 KiB", "Ollama"]) assert.ok(ollamaRow.includes(part), `${ollamaRow} should show ${part}`);
  const wsRow = texts.find((t) => t.includes("stories-f32.gguf"));
  assert.ok(wsRow?.includes("F32 · 1.13 MiB") && wsRow.includes("workspace"), wsRow);

  await pickQuick(page, "llama3.2:3b");
  await waitFor(async () => ((await chat.locator(".model-label").textContent()) === "llama3.2:3b" ? true : undefined), 20_000, "the Ollama model to be chosen");
  await chat.locator("#prompt textarea").fill("Tell me a story about Lily.");
  await chat.locator("#prompt textarea").press("Enter");
  const busy = async () => (await chat.locator("body").getAttribute("data-busy")) === "true";
  await waitFor(async () => ((await chat.locator(".turn.assistant").count()) === 1 && !(await busy()) ? true : undefined), 120_000, "the answer");
  await screenshot(page, "gguf-chat-2-answer");
  assert.equal((await chat.locator(".turn.assistant .by").last().textContent())?.trim(), "llama3.2:3b, no adapter");
  const answer = (await chat.locator(".turn.assistant .text").last().textContent()) ?? "";
  assert.ok(answer.trim().length > 0, "the GGUF model wrote an answer");
  assert.ok(!/error/i.test(answer), answer);
});
