#!/usr/bin/env bash
# The in-process model's prefill and decode speed beside llama.cpp's, on the same GGUF, the same
# prompt and the same number of threads.
#
#   ops/gguf-vs-llama-cpp.sh [MODEL.gguf] [THREADS] [PROMPT_TOKENS ...]
#
# MODEL defaults to SmolLM2-135M (ops/fetch-smollm2.sh), THREADS to 2, the prompt sizes to 512 and
# 2048. llama.cpp is the llama-cpp-python wheel, built once into a virtualenv under
# ${QUIRE_CACHE:-$HOME/.cache/quire}/llama-venv (PyPI ships it as source: the first run compiles
# llama.cpp for this CPU, about ten minutes on two cores).
set -euo pipefail
cd "$(dirname "$0")/.."

model=${1:-$(ops/fetch-smollm2.sh)}
threads=${2:-2}
shift $(( $# > 2 ? 2 : $# ))
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(512 2048)
venv="${QUIRE_CACHE:-$HOME/.cache/quire}/llama-venv"
text=summarize/tests/fixtures/frankenstein-letter1.txt
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

if ! "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
  python3 -m venv "$venv"
  echo "building llama-cpp-python (once)" >&2
  "$venv/bin/pip" install --quiet llama-cpp-python==0.3.36
fi
cargo build --quiet --release -p quire-summarize --example gguf_bench

for n in "${sizes[@]}"; do
  echo "== $n prompt tokens, $threads threads"
  CANDLE_NUM_THREADS=$threads "$CARGO_TARGET_DIR/release/examples/gguf_bench" "$model" \
    --threads "$threads" --prompt-tokens "$n" --decode-tokens 64 | tail -1 | sed 's/^/quire     /'
  "$venv/bin/python" ops/llama-cpp-bench.py "$model" "$n" 64 "$threads" "$text"
done
