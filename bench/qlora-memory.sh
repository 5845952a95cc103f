#!/usr/bin/env bash
# QLoRA against LoRA on one random Llama-layout model (8 x 1024, GQA 16/4 heads, SwiGLU 2816;
# 8 x 11.5 M projection weights, 368 MB in float32): resident bytes of the linear weights, peak RSS
# (VmHWM), tokens/s and held-out loss per mode, each mode in its own JVM so that each peak belongs
# to one run. Same data (byte-level ids of examples/data/debian-sections.jsonl), seed and steps in
# every mode. Prints `uptime` before each run (the machine may be shared) and one JSON line per run.
# The held-out loss of each base (fp32, NF4, NF4 without double quantization) is taken in runs of
# its own (base-loss:MODE), since a first evaluation pass leaves libtorch holding memory that would
# hide the training runs' peaks.
# Usage: bench/qlora-memory.sh [STEPS] [MODES...]   (STEPS defaults to 6; MODES to lora qlora
#        qlora-nodq qlora-nockpt base-loss:lora base-loss:qlora base-loss:qlora-nodq; lora-ckpt
#        too). Extra Maven flags: MVN_FLAGS="-o ...".
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/services/engine/target/bench"
DIR="$OUT/llama-qlora-bench"
STEPS="${1:-6}"
shift || true
MODES=("$@")
[[ ${#MODES[@]} -gt 0 ]] || MODES=(lora qlora qlora-nodq qlora-nockpt base-loss:lora base-loss:qlora base-loss:qlora-nodq)
mkdir -p "$OUT"
"$ROOT/mvnw" -B -q ${MVN_FLAGS:-} -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true -pl services/engine -am
"$ROOT/mvnw" -B -q ${MVN_FLAGS:-} -f "$ROOT/services/engine/pom.xml" dependency:build-classpath -Dmdep.outputFile="$OUT/classpath.txt"
run() {
  java -Xmx512m -XX:MaxDirectMemorySize=128m -Dai.djl.offline=true -DENGINE_CACHE_DIR="$HOME/.cache/tuneline/djl" \
    -Dai.djl.pytorch.num_threads=2 -Dai.djl.pytorch.num_interop_threads=1 \
    -cp "$ROOT/services/engine/target/classes:$(cat "$OUT/classpath.txt")" \
    io.tuneline.engine.bench.QloraMemory "$@"
}
[[ -f "$DIR/config.json" ]] || run write "$DIR"
for mode in "${MODES[@]}"; do
  echo "# $(uptime)"
  run "$mode" "$DIR" "$ROOT/examples/data/debian-sections.jsonl" "$STEPS" 2> /dev/null | grep '^{'
done
