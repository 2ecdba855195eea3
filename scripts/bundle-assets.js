// After esbuild: the files the bundles load at run time, next to them.
// - tfjs's wasm binaries, which @tensorflow/tfjs-backend-wasm fetches from the bundle's folder;
// - onnxruntime-node's native binding and library for this platform: the bundled binding.js
//   requires `../bin/napi-v6/<platform>/<arch>/onnxruntime_binding.node` relative to the
//   bundle, i.e. dist/bin/... (so the .vsix is platform-specific: `npm run package`).
const fs = require("node:fs");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
const wasm = path.join(root, "node_modules/@tensorflow/tfjs-backend-wasm/dist");
for (const f of fs.readdirSync(wasm)) if (f.endsWith(".wasm")) fs.copyFileSync(path.join(wasm, f), path.join(root, "dist/bundle", f));

const rel = path.join("bin", "napi-v6", process.platform, process.arch);
const from = path.join(root, "node_modules/onnxruntime-node", rel);
const to = path.join(root, "dist", rel);
fs.rmSync(path.join(root, "dist", "bin"), { recursive: true, force: true });
if (fs.existsSync(from)) fs.cpSync(from, to, { recursive: true });
else console.warn(`bundle-assets: onnxruntime-node has no binary for ${process.platform}/${process.arch}; the bundles will run on tfjs`);

// The PyTorch job template that `excitor export-job` copies (engine/export/torch-job.ts looks beside the bundle).
const job = path.join(root, "engine/export/torch-job");
fs.rmSync(path.join(root, "dist/bundle/torch-job"), { recursive: true, force: true });
fs.cpSync(job, path.join(root, "dist/bundle/torch-job"), { recursive: true, filter: (src) => !/__pycache__|\.pyc$/.test(src) });
