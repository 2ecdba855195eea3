#!/usr/bin/env bash
# The benchmark's peers, installed when missing; nothing else is touched.
# - PyTorch: Debian's python3-torch (eager PyTorch 1.13 on OpenBLAS), with apt-get when
#   /usr/bin/python3 cannot import torch.
# - llama.cpp: node-llama-cpp with its prebuilt CPU binary (bench/llama-cpp/install.sh).
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

bash "$here/llama-cpp/install.sh" || echo "bench setup: the bench runs without its llama.cpp column" >&2
