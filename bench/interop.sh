#!/usr/bin/env bash
# Loads every export Tuneline writes with the real Hugging Face packages: the engine writes each
# model family x method as the worker does (merged Hugging Face directories, PEFT adapters, Llama
# family checkpoints in F32 and sharded BF16, chat renderings of the real Llama 3 and Qwen3
# templates) with its own logits, greedy tokens and token ids (InteropExports); then
# bench/interop_check.py loads them with transformers and peft (AutoModelFor*, PeftModel,
# generate, merge_and_unload, apply_chat_template) and compares (fp32 logits within 1e-4).
#
# The build machines have no transformers/peft; any Python that has them will do:
#   PYTHON=/path/to/python bench/interop.sh [OUT_DIR]     # default OUT_DIR: target/interop
# Without such a Python it writes the exports only: copy OUT_DIR where one is and run
#   python3 bench/interop_check.py OUT_DIR [summary.json]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/target/interop}")"
PYTHON="${PYTHON:-python3}"
ENGINE="$ROOT/services/engine"
"$ROOT/mvnw" -B -q -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true -pl services/engine -am
"$ROOT/mvnw" -B -q -f "$ENGINE/pom.xml" dependency:build-classpath -Dmdep.includeScope=test \
  -Dmdep.outputFile="$ENGINE/target/interop-classpath.txt"
rm -rf "$OUT" && mkdir -p "$OUT"
java -Xmx2g -Dai.djl.offline=true -DENGINE_CACHE_DIR="$HOME/.cache/tuneline/djl" \
  -Dai.djl.pytorch.num_threads=2 -Dai.djl.pytorch.num_interop_threads=1 \
  -cp "$ENGINE/target/test-classes:$ENGINE/target/classes:$(cat "$ENGINE/target/interop-classpath.txt")" \
  io.tuneline.engine.method.InteropExports "$OUT" 2> "$OUT/engine.log" | grep -v '^\['
if "$PYTHON" -c 'import transformers, peft' 2> /dev/null; then
  "$PYTHON" "$ROOT/bench/interop_check.py" "$OUT" "$OUT/summary.json" 2> "$OUT/check.log"
else
  echo "no transformers/peft in $PYTHON: exports written to $OUT; run bench/interop_check.py $OUT where they are"
fi
