#!/usr/bin/env bash
# Every fine-tuning method on the same data and budget, in the engine, one method per process
# (io.tuneline.engine.bench.MethodQuality): the MiniLM classifier on the Debian-sections set
# (held-out macro-F1 and accuracy with 95% bootstrap intervals) and a small Llama-layout decoder
# pretrained here on three sections' descriptions and adapted to the fourth's (held-out
# perplexity with a 95% interval over documents). Prints the two Markdown tables of
# docs/methods.md; each row also has trainable parameters, the process's peak resident memory and
# the last step's tokens/s.
#
#   [TASKS="classify lm"] [METHODS="..."] [EPOCHS=2] [MAX_TRAIN=960] [LM_EPOCHS=2] \
#       bench/method-quality.sh [DATA.jsonl]      # default: examples/data/debian-sections.jsonl
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DATA="${1:-$ROOT/examples/data/debian-sections.jsonl}"
TASKS="${TASKS:-classify lm}"
METHODS="${METHODS:-untuned full freeze lora qlora adapter-houlsby adapter-pfeiffer prefix prefix-projection p-tuning prompt}"
EPOCHS="${EPOCHS:-2}"
MAX_TRAIN="${MAX_TRAIN:-960}"
LM_EPOCHS="${LM_EPOCHS:-2}"
OUT="$ROOT/services/engine/target/bench/method-quality"
mkdir -p "$OUT"
MVN=("$ROOT/mvnw" -B -q ${MAVEN_REPO:+-Dmaven.repo.local=$MAVEN_REPO} ${MAVEN_OFFLINE:+-o})
"${MVN[@]}" -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true -pl services/engine -am
"${MVN[@]}" -f "$ROOT/services/engine/pom.xml" dependency:build-classpath -Dmdep.outputFile="$OUT/classpath.txt"
CP="$ROOT/services/engine/target/classes:$(cat "$OUT/classpath.txt")"
run() {
  java -Xmx3g -Dai.djl.offline=true -DENGINE_CACHE_DIR="$HOME/.cache/tuneline/djl" \
    -Dai.djl.pytorch.num_threads="${THREADS:-2}" -Dai.djl.pytorch.num_interop_threads=1 -cp "$CP" \
    io.tuneline.engine.bench.MethodQuality "$@"
}
table() { # $1 file, $2 quality header
  echo "| method | trainable / total parameters | steps | peak memory (MiB) | tokens/s | $2 |"
  echo "|---|---|---:|---:|---:|---|"
  awk -F'\t' '$1 == "ROW" {
    pct = $4 > 0 ? sprintf(" (%.2f%%)", 100 * $3 / $4) : "";
    q = $8; for (i = 9; i <= NF; i++) q = q " | " $i;
    printf "| %s | %\047d / %\047d%s | %d | %d | %s | %s |\n", $2, $3, $4, pct, $5, $6, ($7 > 0 ? $7 : "-"), q
  }' "$1"
}
for task in $TASKS; do
  rows="$OUT/$task.tsv"
  : > "$rows"
  if [ "$task" = lm ] && [ ! -f "$OUT/lm-base/model.safetensors" ]; then
    run lm-base "$DATA" "$OUT/lm-base" "${LM_BASE_EPOCHS:-3}" | tee "$OUT/lm-base.log"
  fi
  for method in $METHODS; do
    echo "== $task $method" >&2
    if [ "$task" = classify ]; then
      run classify "$DATA" "$method" "$EPOCHS" 16 64 "$MAX_TRAIN" 42 | tee -a "$rows" >&2
    else
      run lm "$OUT/lm-base" "$DATA" "$method" "$LM_EPOCHS" 16 42 | tee -a "$rows" >&2
    fi
  done
done
for task in $TASKS; do
  if [ "$task" = classify ]; then
    echo; echo "Classifier (all-MiniLM-L6-v2), $(basename "$DATA"), $EPOCHS epochs over ${MAX_TRAIN} training records:"; echo
    table "$OUT/classify.tsv" "held-out macro-F1 [95% CI] | accuracy [95% CI]"
  else
    echo; echo "Decoder (Llama layout, 4 x 128), adapted to the \"net\" descriptions, $LM_EPOCHS epochs:"; echo
    table "$OUT/lm.tsv" "held-out perplexity [95% CI]"
  fi
done
