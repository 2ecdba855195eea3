/**
 * "Excitor: Show Attention" from the palette asks which adapter: the chat's, each run's, or none.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { attentionChoices, NO_ADAPTER_LABEL } from "../extension/attention-target";
import type { RunInfo } from "../extension/run-manager";

const run = (name: string, createdAt: string, o: Partial<RunInfo> = {}): RunInfo =>
  ({ id: name, dir: `/runs/${name}`, name, spec: { model: "/models/demo" }, status: "done", createdAt, hasAdapter: true, ...o }) as RunInfo;

test("the chat's adapter first, then each finished run with an adapter (newest first), then the base model alone", () => {
  const runs = [
    run("old", "2025-01-01T10:00:00Z"),
    run("new", "2025-03-01T10:00:00Z"),
    run("training", "2025-04-01T10:00:00Z", { status: "running" }),
    run("failed-early", "2025-02-01T10:00:00Z", { status: "failed", hasAdapter: false }),
    run("stopped", "2025-02-15T10:00:00Z", { status: "stopped" }),
    run("chatting", "2024-12-01T10:00:00Z"),
  ];
  const choices = attentionChoices({ model: "/models/demo", adapter: "/runs/chatting" }, runs, (d) => d.split("/").pop()!);
  assert.deepEqual(
    choices.map((c) => [c.label, c.adapter]),
    [
      ["The chat's adapter: chatting", "/runs/chatting"],
      ["new", "/runs/new"],
      ["stopped", "/runs/stopped"],
      ["old", "/runs/old"],
      [NO_ADAPTER_LABEL, null],
    ],
  );
  assert.ok(choices.every((c) => c.model === "/models/demo"));
});

test("with no adapter in the chat and no runs, only the base model is offered", () => {
  const choices = attentionChoices({ model: "/m", adapter: null }, [], (d) => d);
  assert.deepEqual(choices, [{ label: NO_ADAPTER_LABEL, description: "/m", model: "/m", adapter: null }]);
});

test("a run's adapter is looked at with the run's own base model", () => {
  const choices = attentionChoices({ model: "/models/chat-model", adapter: null }, [run("other", "2025-01-01T00:00:00Z", { spec: { model: "/models/other" } as RunInfo["spec"] })], (d) => d);
  assert.equal(choices[0].model, "/models/other");
  assert.equal(choices[1].model, "/models/chat-model", "no adapter: the chat's model");
});

test("the chat's adapter is looked at with the chat's image, and says so; the others go without it", () => {
  const image = { path: "/storage/chat-images/0123456789abcdef01234567.png", name: "cat.png" };
  const choices = attentionChoices({ model: "/models/demo", adapter: "/runs/vision", image }, [run("other", "2025-01-01T00:00:00Z")], (d) => d.split("/").pop()!);
  assert.deepEqual(choices[0].image, image);
  assert.match(choices[0].description, /with the chat's image cat\.png$/);
  assert.ok(choices.slice(1).every((c) => c.image === undefined), "a run's adapter or the base model alone: no image");
});
