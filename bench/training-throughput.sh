#!/usr/bin/env bash
# Training throughput of the engine (DJL + libtorch 2.7.1) against plain PyTorch (Debian's
# python3-torch) on the same MiniLM classifier, method, batch (8 x 32 tokens) and 2 threads.
# The two run in turn, REPS times per method, so a drift of the shared machine hits both alike;
# the ratio is taken per pair and its median reported.
#
#   apt-get install python3-torch libopenblas0-openmp     # the peer and a fast BLAS for it
#   bench/training-throughput.sh [STEPS] [REPS]           # default 20 steps, 3 pairs
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STEPS="${1:-20}"
REPS="${2:-3}"
OUT="$ROOT/services/engine/target/bench"
mkdir -p "$OUT"

"$ROOT/mvnw" -B -q -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true -pl services/engine -am
"$ROOT/mvnw" -B -q -f "$ROOT/services/engine/pom.xml" dependency:build-classpath -Dmdep.outputFile="$OUT/classpath.txt"
CP="$ROOT/services/engine/target/classes:$(cat "$OUT/classpath.txt")"
JAVA=(java -Xmx3g -Dai.djl.offline=true -DENGINE_CACHE_DIR="$HOME/.cache/tuneline/djl"
  -Dai.djl.pytorch.num_threads=2 -Dai.djl.pytorch.num_interop_threads=1 -cp "$CP"
  io.tuneline.engine.bench.TrainingThroughput)
# Debian's torch defaults to the reference BLAS; the OpenMP OpenBLAS makes it a fair peer.
export LD_LIBRARY_PATH="/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMP_NUM_THREADS=2

"${JAVA[@]}" lora 1 "$OUT" > /dev/null 2>&1   # exports base.safetensors, unpacks libtorch once
: > "$OUT/results.jsonl"
for method in full freeze lora; do
  for ((i = 1; i <= REPS; i++)); do
    "${JAVA[@]}" "$method" "$STEPS" 2> /dev/null | grep '^{' >> "$OUT/results.jsonl"
    /usr/bin/python3 "$ROOT/bench/torch_minilm_train.py" "$method" "$STEPS" "$OUT/base.safetensors" >> "$OUT/results.jsonl"
  done
done

/usr/bin/python3 - "$OUT/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| method | trainable params | DJL tokens/s | PyTorch tokens/s | DJL / PyTorch (median of pairs) | DJL peak RSS MiB | PyTorch peak RSS MiB |")
print("|---|---:|---:|---:|---:|---:|---:|")
for m in ("full", "freeze", "lora"):
    d = [r for r in rows if r["method"] == m and r["impl"] == "djl"]
    p = [r for r in rows if r["method"] == m and r["impl"] == "pytorch"]
    ratios = [a["tokens_per_second"] / b["tokens_per_second"] for a, b in zip(d, p)]
    med = lambda xs, k: statistics.median(x[k] for x in xs)
    print(f"| {m} | {d[0]['trainable']:,} | {med(d,'tokens_per_second'):.0f} | {med(p,'tokens_per_second'):.0f} "
          f"| {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}) "
          f"| {med(d,'peak_rss_mb'):.0f} | {med(p,'peak_rss_mb'):.0f} |")
print(f"\nPyTorch {p[0].get('torch')}, {len(d)} pairs of {d[0]['steps']} steps per method.")
PY
