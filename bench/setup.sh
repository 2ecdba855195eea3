#!/usr/bin/env bash
# The benchmark's peers, installed when missing; nothing else is touched.
# - PyTorch: Debian's python3-torch (eager PyTorch 1.13 on OpenBLAS), with apt-get when
#   /usr/bin/python3 cannot import torch.
# - llama.cpp: node-llama-cpp with its prebuilt CPU binary (@node-llama-cpp/linux-x64), pinned in
#   bench/llama-cpp/package-lock.json and installed into bench/llama-cpp/node_modules, never into
#   the root package. NODE_LLAMA_CPP_SKIP_DOWNLOAD, --omit=optional and --ignore-scripts: no GPU
#   builds, no postinstall (which would fetch or compile llama.cpp); the bench loads the prebuilt
#   binary with build "never", so nothing is downloaded at run time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  echo "bench setup: installing python3-torch and libopenblas0-pthread with apt-get" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-torch libopenblas0-pthread >/dev/null
  /usr/bin/python3 -c "import torch" || { echo "bench setup: python3-torch installed but torch does not import" >&2; exit 1; }
fi

llama="$here/llama-cpp"
want="$(node -p "require('$llama/package.json').dependencies['node-llama-cpp']")"
have() { node -p "require('$llama/node_modules/$1/package.json').version" 2>/dev/null || true; }
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "bench setup: the llama.cpp peer is pinned to node-llama-cpp's linux-x64 binary; skipped on $(uname -s)-$(uname -m)" >&2
elif [ "$(have node-llama-cpp)" != "$want" ] || [ "$(have @node-llama-cpp/linux-x64)" != "$want" ]; then
  echo "bench setup: installing node-llama-cpp $want (prebuilt CPU binary) into bench/llama-cpp" >&2
  (cd "$llama" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-save --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error >&2) ||
    echo "bench setup: could not install node-llama-cpp; the bench runs without its llama.cpp column" >&2
fi
