/**
 * The HTML shell every Excitor webview gets: a strict Content-Security-Policy (no remote
 * resources, scripts only with this page's nonce, styles only from the extension), the shared
 * stylesheet, and one bundled script from dist/webview.
 */
import { randomBytes } from "node:crypto";
import * as vscode from "vscode";
import { receive, type Checked } from "./messages";

/** `extraRoots`: other folders the webview may load files from (the chat's images). */
export function webviewOptions(extensionUri: vscode.Uri, extraRoots: vscode.Uri[] = []): vscode.WebviewOptions {
  return {
    enableScripts: true,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, "dist", "webview"), vscode.Uri.joinPath(extensionUri, "media"), ...extraRoots],
  };
}

/** `script` is the bundle's name in dist/webview (chat, training, attention). */
export function webviewHtml(webview: vscode.Webview, extensionUri: vscode.Uri, script: string, title: string): string {
  const nonce = randomBytes(16).toString("base64");
  const js = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, "dist", "webview", `${script}.js`));
  const css = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, "media", "webview.css"));
  const csp = [
    "default-src 'none'",
    `img-src ${webview.cspSource} data: blob:`,
    `style-src ${webview.cspSource} 'nonce-${nonce}'`,
    `font-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join("; ");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${css}">
<title>${title}</title>
</head>
<body data-view="${script}">
<div id="app" role="main"></div>
<script nonce="${nonce}" src="${js}"></script>
</body>
</html>`;
}

/** Relays a webview's messages to `handle` through `receive` (messages.ts): checked first, malformed ones logged and dropped. */
export function onCheckedMessage<T>(
  webview: vscode.Webview,
  check: (raw: unknown) => Checked<T>,
  handle: (m: T) => unknown,
  log: vscode.LogOutputChannel,
  where: string,
): vscode.Disposable {
  return webview.onDidReceiveMessage((raw: unknown) => receive(raw, check, handle, log, where, (message) => void vscode.window.showErrorMessage(`Excitor: ${message}`)));
}
