// `npm run package`: the .vsix for this platform. It carries onnxruntime's native library for
// this platform only (dist/bin, see bundle-assets.js), so it is marked with vsce's --target.
const { execFileSync } = require("node:child_process");
const path = require("node:path");

const target = `${process.platform}-${process.arch}`; // vsce's names: linux-x64, darwin-arm64, win32-x64, ...
const vsce = path.join(__dirname, "..", "node_modules", "@vscode", "vsce", "vsce");
execFileSync(process.execPath, [vsce, "package", "--no-dependencies", "--target", target, "--out", "dist/excitor.vsix"], { stdio: "inherit", cwd: path.join(__dirname, "..") });
