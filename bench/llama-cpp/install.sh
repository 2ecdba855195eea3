#!/usr/bin/env bash
# llama.cpp for the bench's decode comparison and the test that llama.cpp reads the bench's GGUF
# files: node-llama-cpp with its prebuilt CPU binary (@node-llama-cpp/linux-x64), pinned in
# bench/llama-cpp/package-lock.json and installed into bench/llama-cpp/node_modules, never into
# the root package (nor the .vsix). NODE_LLAMA_CPP_SKIP_DOWNLOAD, --omit=optional and
# --ignore-scripts: no GPU builds, no postinstall (which would fetch or compile llama.cpp); it is
# loaded with build "never", so nothing is downloaded at run time. Installs only when missing.
set -euo pipefail
llama="$(cd "$(dirname "$0")" && pwd)"
want="$(node -p "require('$llama/package.json').dependencies['node-llama-cpp']")"
have() { node -p "require('$llama/node_modules/$1/package.json').version" 2>/dev/null || true; }
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "bench setup: the llama.cpp peer is pinned to node-llama-cpp's linux-x64 binary; skipped on $(uname -s)-$(uname -m)" >&2
elif [ "$(have node-llama-cpp)" != "$want" ] || [ "$(have @node-llama-cpp/linux-x64)" != "$want" ]; then
  echo "bench setup: installing node-llama-cpp $want (prebuilt CPU binary) into bench/llama-cpp" >&2
  (cd "$llama" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-save --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error >&2) ||
    { echo "bench setup: could not install node-llama-cpp from the npm registry" >&2; exit 1; }
fi
