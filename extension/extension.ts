/**
 * Activation: reads the settings, creates the run manager, the engine pool, the views and panels,
 * and registers the commands. Everything heavy (models, training, generation) runs in engine
 * processes started by extension/engine-process.ts.
 */
import * as path from "node:path";
import * as vscode from "vscode";
import { AttentionPanel, ATTENTION_VIEW_TYPE, askAttentionTarget, type AttentionTarget } from "./attention-panel";
import { ChatViewProvider, CHAT_VIEW_ID } from "./chat-view";
import { EnginePool } from "./engine-pool";
import { nodeLauncher } from "./engine-process";
import { ExcitorInputError } from "../engine/errors";
import { messageOf, showEngineError } from "./errors";
import { builtInDataset, builtInModel, modelFolder, revealFolder, runsFolder } from "./places";
import { checkModel } from "./preflight";
import { RunManager, type RunInfo } from "./run-manager";
import { RunItem, RunsTree } from "./runs-tree";
import { demoSpec, type RunSpec } from "./run-spec";
import { readSettings, type ExcitorSettings } from "./settings";
import { TrainingPanels, TRAINING_VIEW_TYPE } from "./training-panel";
import { askRunSpec } from "./train-wizard";
import { compareMethods } from "./compare-command";
import { exportDistributedJob } from "./export-job-command";
import { followRun } from "./train-progress";
import { runTime } from "./run-labels";

export function activate(ctx: vscode.ExtensionContext): void {
  const root = ctx.extensionUri.fsPath;
  const log = vscode.window.createOutputChannel("Excitor", { log: true });
  ctx.subscriptions.push(log);

  let settings = loadSettings(log);
  checkModelSetting(settings, log);
  const launcher = nodeLauncher(root, () => ({ threads: settings.threads }));
  const runs = new RunManager(runsFolder(settings, ctx), launcher, () => settings.backend, (l) => log.info(l));
  const pool = new EnginePool(launcher, () => settings.backend, (l) => log.info(l));
  ctx.subscriptions.push({ dispose: () => (runs.dispose(), pool.dispose()) });
  log.info(`runs folder: ${runs.root}`);

  const attention = new AttentionPanel(ctx.extensionUri, pool, log);
  const chat = new ChatViewProvider(
    ctx,
    pool,
    () => runs,
    () => ({ model: modelFolder(settings, root), params: settings.chat }),
    log,
    (t) => attention.show(t),
  );
  const tree = new RunsTree(() => runs);
  /** A run just started or resumed: its panel, and a progress notification until it ends. */
  const follow = (info: RunInfo) => {
    panels.show(info.id);
    followRun(runs, info.id, info.name, { chat: (r) => chat.useAdapter(r.spec.model, r.dir), attention: (r) => showAttention(r) });
  };
  const startRun = (spec: RunSpec, name: string) => follow(runs.start(spec, name));
  const resume = (id: string) => follow(runs.resume(id));
  /** A second training at once is allowed, but only when asked for: each slows the other down. */
  const confirmAnother = async (): Promise<boolean> => {
    const busy = runs.running();
    if (busy.length === 0) return true;
    const names = busy.map((r) => `“${r.name}”`).join(" and ");
    const pick = await vscode.window.showWarningMessage(
      `Excitor: ${names} ${busy.length > 1 ? "are" : "is"} training. Start another?`,
      { modal: true, detail: "Both will be slower (they share the CPU cores)." },
      "Start Another",
    );
    return pick === "Start Another";
  };
  const askResume = async (id: string) => {
    if (await confirmAnother()) resume(id);
  };
  const panels = new TrainingPanels(ctx.extensionUri, runs, log, (id) => guard(() => askResume(id)));

  const showAttention = async (run?: RunInfo): Promise<void> => {
    // From a run: its adapter. From the palette: ask which (the chat's, a run's, or none).
    const picked = run ? { model: run.spec.model, adapter: run.dir } : await askAttentionTarget(chat.target(), runs.list(), root);
    if (!picked) return;
    const last = await vscode.window.showInputBox({
      title: "Excitor: Show Attention",
      prompt: "An instruction; the tuned model answers it and the panel shows where each layer looks",
      placeHolder: "What is the name of the bird?",
      ignoreFocusOut: true,
      validateInput: (v) => (v.trim() === "" ? "type an instruction" : undefined),
    });
    if (last === undefined) return;
    const target: AttentionTarget = { ...picked, prompt: last, input: "", response: "" };
    attention.show(target);
  };

  const pickRun = async (filter: (r: RunInfo) => boolean, title: string): Promise<RunInfo | undefined> => {
    const candidates = runs.list().filter(filter);
    if (candidates.length === 0) {
      void vscode.window.showInformationMessage(`Excitor: no run to ${title.toLowerCase()}`);
      return undefined;
    }
    if (candidates.length === 1) return candidates[0];
    const pick = await vscode.window.showQuickPick(
      candidates.map((r) => ({ label: r.name, description: `${r.status} · ${runTime(r.createdAt)}`, run: r })),
      { title: `Excitor: ${title}` },
    );
    return pick?.run;
  };
  const runOf = (item: unknown): RunInfo | undefined => (item instanceof RunItem ? runs.get(item.run.id) : undefined);

  const command = (id: string, fn: (...args: unknown[]) => unknown) => ctx.subscriptions.push(vscode.commands.registerCommand(id, (...a: unknown[]) => guard(() => fn(...a))));
  const train = async (uri?: unknown) => {
    if (!(await confirmAnother())) return;
    const asked = await askRunSpec(root, settings, uri instanceof vscode.Uri ? uri : undefined);
    if (asked) startRun(asked.spec, asked.name);
  };
  command("excitor.train", train);
  // The same command for the Explorer's context menu, whose entries show no category: its title says "Excitor".
  command("excitor.trainOnFile", train);
  command("excitor.runDemo", async () => {
    if (!(await confirmAnother())) return;
    const model = builtInModel(root);
    const facts = checkModel(model);
    startRun(demoSpec(model, builtInDataset(root), facts.ok ? facts.value.maxPositions : undefined), "demo");
  });
  command("excitor.resumeTraining", async (item?: unknown) => {
    const run = runOf(item) ?? (await pickRun((r) => r.canResume, "Resume Training"));
    if (run) await askResume(run.id);
  });
  command("excitor.stopTraining", async (item?: unknown) => {
    const run = runOf(item) ?? (await pickRun((r) => runs.isRunning(r.id), "Stop Training"));
    if (run && !runs.stop(run.id)) void vscode.window.showInformationMessage(`Excitor: ${run.name} is not running`);
  });
  command("excitor.showAttention", (item?: unknown) => showAttention(runOf(item)));
  command("excitor.openTraining", (item?: unknown) => {
    const run = runOf(item);
    if (run) panels.show(run.id);
  });
  command("excitor.openRunFolder", (item?: unknown) => {
    const run = runOf(item);
    if (run) return revealFolder(run.dir);
  });
  command("excitor.openReport", (item?: unknown) => {
    const run = runOf(item);
    if (run?.report) return vscode.commands.executeCommand("markdown.showPreview", vscode.Uri.file(run.report));
    if (run) panels.show(run.id);
  });
  command("excitor.chatWithRun", (item?: unknown) => {
    const run = runOf(item);
    if (run) chat.useAdapter(run.spec.model, run.dir);
  });
  command("excitor.deleteRun", async (item?: unknown) => {
    const run = runOf(item);
    if (!run) return;
    const ok = await vscode.window.showWarningMessage(`Delete the run “${run.name}” and its adapter (${run.dir})?`, { modal: true }, "Delete");
    if (ok === "Delete") {
      runs.delete(run.id);
      tree.refresh();
      chat.refreshLists();
    }
  });
  command("excitor.refreshRuns", () => tree.refresh());
  // Its folder sits beside the runs folder: .excitor/compare-… next to .excitor/runs.
  command("excitor.compareMethods", () => compareMethods(root, settings, launcher, path.dirname(runs.root), (l) => log.info(l)));
  // Jobs sit beside the runs too: .excitor/jobs/… next to .excitor/runs.
  command("excitor.exportJob", () => exportDistributedJob(root, settings, launcher, path.join(path.dirname(runs.root), "jobs"), runs.root, (l) => log.info(l)));
  command("excitor.showLog", () => log.show());

  ctx.subscriptions.push(
    vscode.window.createTreeView("excitor.runs", { treeDataProvider: tree, showCollapseAll: false }),
    vscode.window.registerWebviewViewProvider(CHAT_VIEW_ID, chat, { webviewOptions: { retainContextWhenHidden: false } }),
    vscode.window.registerWebviewPanelSerializer(TRAINING_VIEW_TYPE, { deserializeWebviewPanel: async (panel, state) => panels.restore(panel, state) }),
    vscode.window.registerWebviewPanelSerializer(ATTENTION_VIEW_TYPE, { deserializeWebviewPanel: async (panel) => attention.restore(panel) }),
    runs.onStatus((info) => {
      tree.refresh();
      chat.refreshLists();
      // Nothing left to show: its folder was deleted, or the engine rejected it before it began.
      if (info.status === "deleted" || info.discarded) panels.close(info.id);
      if (info.status === "failed" && info.error) void showEngineError(info.discarded ? `Excitor: cannot train “${info.name}”` : `Excitor: training “${info.name}” failed`, info.error);
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration("excitor")) return;
      const before = settings;
      settings = loadSettings(log);
      if (before.backend !== settings.backend || before.threads !== settings.threads) pool.dispose();
      if (before.modelFolder !== settings.modelFolder) checkModelSetting(settings, log);
      if (runsFolder(before, ctx) !== runsFolder(settings, ctx))
        void vscode.window.showInformationMessage("Excitor: the new runs folder is used after the window reloads.", "Reload Window").then((p) => p && vscode.commands.executeCommand("workbench.action.reloadWindow"));
    }),
  );

  // Runs the previous window was training when it went away (a reload, the editor closing).
  void runs.collectInterrupted().then(async (interrupted) => {
    if (interrupted.length === 0) return;
    tree.refresh();
    // Their tabs, where the window did not bring them back itself.
    for (const r of interrupted) panels.show(r.id);
    const resumable = interrupted.filter((r) => r.canResume);
    const names = interrupted.map((r) => `“${r.name}”`).join(", ");
    const lost = interrupted.length - resumable.length;
    const note = lost === 0 ? "" : resumable.length === 0 ? "; it stopped before its first checkpoint, so it cannot be resumed" : `; ${lost} of them had no checkpoint yet and cannot be resumed`;
    const message = `Excitor: ${interrupted.length === 1 ? "the training" : `${interrupted.length} trainings`} ${names} ${interrupted.length === 1 ? "was" : "were"} interrupted when the window reloaded or closed${note}`;
    const action = resumable.length > 1 ? "Resume All" : "Resume";
    const pick = await vscode.window.showWarningMessage(message, ...(resumable.length ? [action] : []));
    if (pick !== action || !(await confirmAnother())) return;
    for (const r of resumable) await guard(() => resume(r.id));
  });
}

/** A model folder set in the settings is checked when set, so a wrong one is named at once, not at the first training or chat. */
function checkModelSetting(settings: ExcitorSettings, log: vscode.LogOutputChannel): void {
  if (settings.modelFolder === "") return;
  const checked = checkModel(settings.modelFolder);
  if (checked.ok) return;
  log.warn(`excitor.modelFolder: ${checked.error.message}`);
  void showEngineError("Excitor: the excitor.modelFolder setting", checked.error);
}

export function deactivate(): void {
  // Disposables registered in activate() stop runs (each keeps a checkpoint and is offered for
  // Resume at the next start) and engine processes.
}

function loadSettings(log: vscode.LogOutputChannel): ExcitorSettings {
  const cfg = vscode.workspace.getConfiguration("excitor");
  const { settings, problems } = readSettings((key) => {
    const i = cfg.inspect(key);
    return i?.workspaceFolderValue ?? i?.workspaceValue ?? i?.globalValue;
  });
  for (const p of problems) log.warn(p);
  if (problems.length) void vscode.window.showWarningMessage(`Excitor: ${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more; see the Excitor output)` : ""}`);
  return settings;
}

async function guard(fn: () => unknown): Promise<void> {
  try {
    await fn();
  } catch (e) {
    // A bad model or dataset: the message names the file and line, and Open File goes there.
    if (e instanceof ExcitorInputError) void showEngineError("Excitor", { message: e.message, file: e.file, line: e.line });
    else void vscode.window.showErrorMessage(`Excitor: ${messageOf(e)}`);
  }
}
