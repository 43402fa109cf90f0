#!/usr/bin/env bash
# Prepare the peer engines for bench/engine.mjs (and the later embedding / generation benches).
#
#   bench/setup-peers.sh [--force]
#
# Idempotent: every step is skipped when its outputs exist and were made from the same inputs (a stamp
# file records a hash of the scripts / package files that produced them); --force redoes everything.
# Everything it writes is gitignored:
#   bench/.peers/hf/            config.json + model.safetensors   (write_hf.py: gpt2-node's Model.load)
#   bench/.peers/onnx/          gpt2_prefill.onnx, gpt2_kv.onnx    (export_onnx.py: onnxruntime-node)
#   bench/.peers/gguf/          gpt2-{f32,f16,bf16}.gguf           (write_gguf.py: node-llama-cpp)
#   bench/peers/node_modules/   onnxruntime-node, node-llama-cpp   (bench/peers/package.json, exact pins)
# Scripts come from $GPT2_PEERS_DIR, default ../shared/peers relative to the repository root; the GGUF
# vocabulary from $GPT2_TOKENIZER_DIR, default <peers>/../fixtures/tokenizer.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_SRC=${GPT2_PEERS_DIR:-$ROOT/../shared/peers}
PEERS_SRC=$(cd "$PEERS_SRC" && pwd)
TOKENIZER_DIR=${GPT2_TOKENIZER_DIR:-$PEERS_SRC/../fixtures/tokenizer}
OUT=$ROOT/bench/.peers
NPM_DIR=$ROOT/bench/peers
PY=/usr/bin/python3
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

mkdir -p "$OUT"
TOTAL_START=$(date +%s.%N)

# step NAME STAMP_INPUT_HASH CMD...: runs CMD unless $OUT/.NAME.stamp holds the same hash; prints its time.
step() {
  local name=$1 hash=$2; shift 2
  local stamp=$OUT/.$name.stamp
  if [[ $FORCE == 0 && -f $stamp && "$(cat "$stamp")" == "$hash" ]]; then
    printf '[setup-peers] %-10s up to date (skipped)\n' "$name"
    return 0
  fi
  rm -f "$stamp"
  local t0 t1
  t0=$(date +%s.%N)
  printf '[setup-peers] %-10s ...\n' "$name"
  "$@"
  t1=$(date +%s.%N)
  echo "$hash" > "$stamp"
  printf '[setup-peers] %-10s done in %s s\n' "$name" "$(elapsed "$t0" "$t1")"
}

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# 1. Debian's PyTorch + NumPy (the weight writers, the ONNX export and the PyTorch peer need them), and
#    OpenBLAS (OpenMP build): Debian's torch calls the system libblas.so.3, which is otherwise the reference
#    BLAS (~1 GFLOP/s here, 10x slower); libopenblas0-openmp takes over that alternative when installed.
APT_PACKAGES="python3-torch python3-numpy libopenblas0-openmp"
install_python() {
  if ! command -v apt-get >/dev/null; then echo "apt-get not found: install $APT_PACKAGES yourself" >&2; return 1; fi
  if [[ $(id -u) == 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $APT_PACKAGES >/dev/null
  else
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q $APT_PACKAGES >/dev/null
  fi
}
if $PY -c 'import torch, numpy' 2>/dev/null && dpkg -s libopenblas0-openmp >/dev/null 2>&1; then
  printf '[setup-peers] %-10s present (torch %s)\n' python "$($PY -c 'import torch; print(torch.__version__)')"
else
  step python "$APT_PACKAGES" install_python
fi

# 2. The shared random GPT-2 124M weights in every engine's format. Each writer runs into a temporary
#    folder that replaces the final one only when complete, so an interrupted run never leaves half files.
atomic_dir() {  # atomic_dir DEST CMD... (CMD gets the temporary folder as its last argument)
  local dest=$1; shift
  local tmp=$dest.tmp.$$
  rm -rf "$tmp"; mkdir -p "$tmp"
  "$@" "$tmp"
  rm -rf "$dest"; mv "$tmp" "$dest"
}
write_hf()   { $PY "$PEERS_SRC/write_hf.py" "$1" >/dev/null; }
write_onnx() { $PY "$PEERS_SRC/export_onnx.py" "$1" 2>&1 | grep -v -i 'warn' || true; test -s "$1/gpt2_kv.onnx"; }
write_gguf() {
  for t in f32 f16 bf16; do $PY "$PEERS_SRC/write_gguf.py" $t "$1/gpt2-$t.gguf" "$TOKENIZER_DIR" >/dev/null; done
}
W=$PEERS_SRC/gpt2_weights.py
step hf   "$(hash_of "$W" "$PEERS_SRC/write_hf.py")"                         atomic_dir "$OUT/hf" write_hf
step onnx "$(hash_of "$W" "$PEERS_SRC/gpt2_torch.py" "$PEERS_SRC/export_onnx.py")" atomic_dir "$OUT/onnx" write_onnx
step gguf "$(hash_of "$W" "$PEERS_SRC/write_gguf.py" "$TOKENIZER_DIR/vocab.json" "$TOKENIZER_DIR/merges.txt")" atomic_dir "$OUT/gguf" write_gguf

# 3. Node peers, exact versions from bench/peers/package.json + package-lock.json.
#    ONNXRUNTIME_NODE_INSTALL=skip: onnxruntime-node ships its CPU binary; its install script would fetch GPU ones.
#    --omit=optional: node-llama-cpp lists CUDA/Vulkan prebuilt packages as optional; package.json names the
#    CPU one (@node-llama-cpp/linux-x64) directly. NODE_LLAMA_CPP_SKIP_DOWNLOAD: never download/compile llama.cpp.
install_npm() {
  (cd "$NPM_DIR" && ONNXRUNTIME_NODE_INSTALL=skip NODE_LLAMA_CPP_SKIP_DOWNLOAD=true \
    npm install --omit=optional --no-audit --no-fund --loglevel=error 2>&1 | grep -v 'Unknown user config' || true)
  test -d "$NPM_DIR/node_modules/onnxruntime-node" && test -d "$NPM_DIR/node_modules/node-llama-cpp"
}
step npm "$(hash_of "$NPM_DIR/package.json" "$NPM_DIR/package-lock.json")" install_npm

TOTAL_END=$(date +%s.%N)
printf '[setup-peers] all done in %s s: %s\n' "$(elapsed "$TOTAL_START" "$TOTAL_END")" "$OUT"
du -sh "$OUT"/hf "$OUT"/onnx "$OUT"/gguf "$NPM_DIR/node_modules" 2>/dev/null | sed 's/^/[setup-peers]   /'
