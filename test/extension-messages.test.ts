/**
 * Every message from a webview is checked before the host acts on it: well-formed messages pass
 * unchanged, anything else is rejected with a reason naming the field (and the host logs and drops it).
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { MAX_IMAGE_BASE64_CHARS, MAX_IMAGE_BYTES } from "../extension/image-rules";
import { checkAttentionMessage, checkChatMessage, checkTrainingMessage, MAX_EXPORT_CHARS, receive } from "../extension/messages";

const params = { temperature: 0.7, topP: 0.9, maxTokens: 128, template: "auto" };
const send = { type: "send", text: "Hi", input: "", compare: false, params };

const rejected = (r: { ok: boolean; error?: string }, why: RegExp) => {
  assert.equal(r.ok, false);
  assert.match((r as { error: string }).error, why);
};

test("chat: well-formed messages pass unchanged", () => {
  for (const m of [{ type: "ready" }, send, { type: "stop" }, { type: "clear" }, { type: "undoClear" }, { type: "copy", index: 2 }, { type: "chooseModel" }, { type: "chooseAdapter", adapter: "" }, { type: "showAttention", index: 0 }]) {
    const r = checkChatMessage(m);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.ok && r.message, m);
  }
});

test("chat: malformed messages are rejected with the field that is wrong", () => {
  rejected(checkChatMessage(null), /not an object/);
  rejected(checkChatMessage("send"), /not an object/);
  rejected(checkChatMessage([send]), /not an object/);
  rejected(checkChatMessage({ type: "explode" }), /unknown message type "explode"/);
  rejected(checkChatMessage({ type: "__proto__" }), /unknown message type/);
  rejected(checkChatMessage({ ...send, text: 42 }), /send\.text: expected string/);
  rejected(checkChatMessage({ ...send, text: "   " }), /send\.text: empty/);
  rejected(checkChatMessage({ ...send, compare: "yes" }), /send\.compare: expected boolean/);
  rejected(checkChatMessage({ ...send, params: null }), /send\.params: expected object/);
  rejected(checkChatMessage({ ...send, params: { ...params, temperature: -1 } }), /temperature/);
  rejected(checkChatMessage({ ...send, params: { ...params, temperature: Number.NaN } }), /temperature: expected number/);
  rejected(checkChatMessage({ ...send, params: { ...params, topP: 0 } }), /topP/);
  rejected(checkChatMessage({ ...send, params: { ...params, maxTokens: 1.5 } }), /maxTokens/);
  rejected(checkChatMessage({ ...send, params: { ...params, maxTokens: 100000 } }), /maxTokens/);
  rejected(checkChatMessage({ ...send, params: { ...params, template: "jinja" } }), /template: expected auto \| chat \| alpaca/);
  rejected(checkChatMessage({ type: "copy", index: -1 }), /copy\.index/);
  rejected(checkChatMessage({ type: "showAttention", index: "0" }), /showAttention\.index: expected number/);
  rejected(checkChatMessage({ type: "chooseAdapter" }), /chooseAdapter\.adapter/);
});

test("chat: image attachments are a name and base64 bytes, a URI, the attach button or the ×; anything else is dropped", () => {
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]).toString("base64");
  for (const m of [{ type: "attachImage", name: "cat.png", data: png }, { type: "attachImageUri", uri: "file:///home/me/cat.jpg" }, { type: "chooseImage" }, { type: "removeImage" }]) {
    const r = checkChatMessage(m);
    assert.ok(r.ok, JSON.stringify(r));
  }
  rejected(checkChatMessage({ type: "attachImage", name: "cat.png" }), /attachImage\.data: expected string/);
  rejected(checkChatMessage({ type: "attachImage", name: 7, data: png }), /attachImage\.name: expected string/);
  rejected(checkChatMessage({ type: "attachImage", name: "cat.png", data: "data:image/png;base64," + png }), /attachImage\.data: not base64/);
  // Past the size limit the webview (which says so in the chat) would not have sent it.
  assert.ok(checkChatMessage({ type: "attachImage", name: "big.png", data: "A".repeat(MAX_IMAGE_BASE64_CHARS) }).ok, "an image at the limit passes");
  assert.ok(MAX_IMAGE_BASE64_CHARS * 0.75 >= MAX_IMAGE_BYTES);
  rejected(checkChatMessage({ type: "attachImage", name: "big.png", data: "A".repeat(MAX_IMAGE_BASE64_CHARS + 4) }), /attachImage\.data: too large/);
  rejected(checkChatMessage({ type: "attachImageUri", uri: "/home/me/cat.jpg" }), /attachImageUri\.uri: not a URI/);
});

test("training panel: only its four message types", () => {
  for (const type of ["ready", "stop", "resume", "openFolder"]) assert.ok(checkTrainingMessage({ type }).ok);
  rejected(checkTrainingMessage({ type: "delete" }), /unknown message type/);
  rejected(checkTrainingMessage(undefined), /not an object/);
});

test("attention panel: analyze needs a prompt; exports must be PNG data URLs or SVG text of bounded size", () => {
  assert.ok(checkAttentionMessage({ type: "analyze", prompt: "Why?", input: "", response: "" }).ok);
  assert.ok(checkAttentionMessage({ type: "dropImage" }).ok, "analyse without the chat's image");
  rejected(checkAttentionMessage({ type: "analyze", prompt: " ", input: "", response: "" }), /empty prompt/);
  rejected(checkAttentionMessage({ type: "analyze", prompt: "Why?", input: "" }), /analyze\.response/);
  assert.ok(checkAttentionMessage({ type: "export", format: "png", data: "data:image/png;base64,iVBORw0KGgo=" }).ok);
  assert.ok(checkAttentionMessage({ type: "export", format: "svg", data: '<svg xmlns="http://www.w3.org/2000/svg"></svg>' }).ok);
  rejected(checkAttentionMessage({ type: "export", format: "png", data: "<svg/>" }), /not a PNG data URL/);
  rejected(checkAttentionMessage({ type: "export", format: "svg", data: "data:image/png;base64,AA" }), /not SVG/);
  rejected(checkAttentionMessage({ type: "export", format: "gif", data: "x" }), /format: expected png \| svg/);
  rejected(checkAttentionMessage({ type: "export", format: "svg", data: "<svg>" + "x".repeat(MAX_EXPORT_CHARS) }), /too large/);
});

test("the host's receiver: a malformed message is logged and dropped, a failing handler is reported, neither throws", async () => {
  const warnings: string[] = [];
  const errors: string[] = [];
  const shown: string[] = [];
  const log = { warn: (l: string) => warnings.push(l), error: (l: string) => errors.push(l) };
  const handled: unknown[] = [];
  const handle = async (m: unknown) => {
    if ((m as { type: string }).type === "stop") throw new Error("nothing to stop");
    handled.push(m);
  };
  assert.equal(await receive({ type: "send", text: 7 }, checkChatMessage, handle, log, "chat", (m) => shown.push(m)), false);
  assert.deepEqual(handled, []);
  assert.deepEqual(warnings, ["chat: ignored a malformed message from the webview: send.text: expected string, got 7"]);
  assert.equal(await receive({ type: "stop" }, checkChatMessage, handle, log, "chat", (m) => shown.push(m)), false);
  assert.deepEqual(errors, ["chat: nothing to stop"]);
  assert.deepEqual(shown, ["nothing to stop"]);
  assert.equal(await receive({ type: "clear" }, checkChatMessage, handle, log, "chat", (m) => shown.push(m)), true);
  assert.deepEqual(handled, [{ type: "clear" }]);
});
