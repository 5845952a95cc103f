#!/usr/bin/env bash
# QLoRA against LoRA on one random Llama-layout model (8 x 1024, GQA 16/4 heads, SwiGLU 2816;
# 8 x 11.5 M projection weights, 368 MB in float32) and on a random GPT-2 of GPT-2 small's shape
# (12 x 768, 50,257 tokens; 85 M projection weights, 340 MB in float32, plus a 154 MB tied
# embedding): resident bytes of the linear weights, peak RSS (VmHWM), tokens/s and held-out loss
# per mode, each mode in its own JVM so that each peak belongs to one run. Same data (byte-level
# ids of examples/data/debian-sections.jsonl), seed and steps in every mode. Prints `uptime` before
# each run (the machine may be shared) and one JSON line per run.
# A mode is MODE (the Llama model), gpt2:MODE, or minilm:lora|qlora|speed (the built-in MiniLM-L6
# classifier, QloraClassifierMemory: batches of 8 texts of 64 tokens). MODE `speed` is the tokens/s ratio: LoRA and QLoRA
# loaded in one JVM, one step of each in turn for PAIRS pairs (default 7), the median of the
# per-pair ratios; the other modes' tokens/s come from separate JVMs and are only indicative.
# The held-out loss of each base (fp32, NF4, NF4 without double quantization) is taken in runs of
# its own (base-loss:MODE), since a first evaluation pass leaves libtorch holding memory that would
# hide the training runs' peaks. JVM limits: -Xmx512m -XX:MaxDirectMemorySize=128m for the Llama
# model, 768m / 512m for GPT-2 (its 154 MB embedding passes through the heap and twice through
# direct buffers: the file channel's temporary one and the native copy's), the same in every
# mode of a model.
# Usage: bench/qlora-memory.sh [STEPS] [MODES...]   (STEPS defaults to 6; MODES to lora qlora
#        qlora-nodq qlora-nockpt base-loss:lora base-loss:qlora base-loss:qlora-nodq; lora-ckpt
#        too; e.g. `bench/qlora-memory.sh 3 gpt2:lora gpt2:qlora gpt2:speed`).
#        Extra Maven flags: MVN_FLAGS="-o ...".
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/services/engine/target/bench"
DIR="$OUT/llama-qlora-bench"
GPT2_DIR="$OUT/gpt2-qlora-bench"
PAIRS="${PAIRS:-7}"
STEPS="${1:-6}"
shift || true
MODES=("$@")
[[ ${#MODES[@]} -gt 0 ]] || MODES=(lora qlora qlora-nodq qlora-nockpt base-loss:lora base-loss:qlora base-loss:qlora-nodq)
mkdir -p "$OUT"
"$ROOT/mvnw" -B -q ${MVN_FLAGS:-} -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true -pl services/engine -am
"$ROOT/mvnw" -B -q ${MVN_FLAGS:-} -f "$ROOT/services/engine/pom.xml" dependency:build-classpath -Dmdep.outputFile="$OUT/classpath.txt"
run() {
  java -Xmx"${HEAP:-512m}" -XX:MaxDirectMemorySize="${DIRECT:-128m}" -Dai.djl.offline=true -DENGINE_CACHE_DIR="$HOME/.cache/tuneline/djl" \
    -Dai.djl.pytorch.num_threads=2 -Dai.djl.pytorch.num_interop_threads=1 \
    -cp "$ROOT/services/engine/target/classes:$(cat "$OUT/classpath.txt")" \
    "io.tuneline.engine.bench.${CLASS:-QloraMemory}" "$@"
}
for mode in "${MODES[@]}"; do
  dir="$DIR"
  if [[ "$mode" == minilm:* ]]; then
    mode="${mode#minilm:}"
    steps="$STEPS"
    [[ "$mode" == speed ]] && steps="$PAIRS"
    echo "# $(uptime)"
    HEAP=768m DIRECT=256m CLASS=QloraClassifierMemory run "$mode" "$ROOT/examples/data/debian-sections.jsonl" "$steps" 2> /dev/null | grep '^{'
    continue
  fi
  if [[ "$mode" == gpt2:* ]]; then
    mode="${mode#gpt2:}"
    dir="$GPT2_DIR"
    # The writer holds the whole checkpoint (496 MB of floats) before it writes; loading copies
    # the 154 MB embedding through the heap and a direct buffer.
    [[ -f "$dir/config.json" ]] || HEAP=3g DIRECT=1g run write-gpt2 "$dir"
    export HEAP=768m DIRECT=512m
  else
    export HEAP=512m DIRECT=128m
    [[ -f "$dir/config.json" ]] || run write "$dir"
  fi
  steps="$STEPS"
  [[ "$mode" == speed ]] && steps="$PAIRS"
  echo "# $(uptime)"
  run "$mode" "$dir" "$ROOT/examples/data/debian-sections.jsonl" "$steps" 2> /dev/null | grep '^{'
done
