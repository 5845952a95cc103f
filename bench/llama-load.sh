#!/usr/bin/env bash
# Loads a Llama-3.2-1B-shaped checkpoint (random BF16 weights, sharded) under a 2 GB Java heap and
# generates 8 tokens with the key/value cache: the loader reads one tensor at a time, so the heap
# stays near the largest tensor (embed_tokens, 128256 x 2048) while the 4.9 GB float32 model lives
# in libtorch's memory. Prints one JSON line (load_s, peak_heap_mb, tokens_per_s).
# Usage: bench/llama-load.sh [DIR]   (DIR defaults to services/engine/target/bench/llama-1b)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/services/engine/target/bench"
DIR="${1:-$OUT/llama-1b}"
mkdir -p "$OUT"
[[ -f "$DIR/config.json" ]] || /usr/bin/python3 "$ROOT/bench/llama_1b_checkpoint.py" "$DIR"
"$ROOT/mvnw" -B -q -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true -pl services/engine -am
"$ROOT/mvnw" -B -q -f "$ROOT/services/engine/pom.xml" dependency:build-classpath -Dmdep.outputFile="$OUT/classpath.txt"
java -Xmx2g -Dai.djl.offline=true -DENGINE_CACHE_DIR="$HOME/.cache/tuneline/djl" \
  -Dai.djl.pytorch.num_threads=2 -Dai.djl.pytorch.num_interop_threads=1 \
  -cp "$ROOT/services/engine/target/classes:$(cat "$OUT/classpath.txt")" \
  io.tuneline.engine.bench.LlamaLoad "$DIR" 8 2> /dev/null | grep '^{'
