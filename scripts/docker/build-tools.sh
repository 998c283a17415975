#!/bin/sh
# The Docker image's tools stage, as a script a clean checkout can run without Docker:
# builds llama-finetune, llama-quantize and llama-server with `npm run tools` (portable
# flags, our patches, the llama.cpp source node-llama-cpp ships) and copies them to OUT,
# where the serving image finds them through ROUNDHOUSE_LLAMA_BIN.
#
#   scripts/docker/build-tools.sh OUT      (from the repository root, after npm install)
#
# Build dependencies: cmake, ninja-build (or make), g++, git. For CUDA, run it in an
# nvidia/cuda:*-devel image with GGML_CUDA=ON added to CMAKE_FLAGS in src/engine/llama-tools.ts
# (README "Docker").
set -eu
out=${1:?usage: scripts/docker/build-tools.sh OUT}
npm run --silent tools
bin=$(node --import tsx -e 'import("./src/engine/llama-tools.ts").then(async (t) => console.log(await t.toolsDir()))')
mkdir -p "$out"
for tool in llama-finetune llama-quantize llama-server; do
  cp "$bin/$tool" "$out/$tool"
done
# Each binary must start where it was built (llama-quantize has no --version: it must print its usage).
"$out/llama-finetune" --version >/dev/null 2>&1
"$out/llama-server" --version >/dev/null 2>&1
"$out/llama-quantize" --help 2>&1 | grep -q "usage:"
echo "llama.cpp tools in $out"
