#!/usr/bin/env bash
# Held-out quality of all-MiniLM-L6-v2 untuned (seeded random head) and after LoRA (r 8, alpha 16,
# dropout 0.05 on query/value) on a labelled JSON Lines set, with the mean or the Hugging Face head
# (io.tuneline.engine.bench.ClassifierQuality): accuracy and macro-F1 with bootstrap 95% intervals.
#
#   bench/classifier-quality.sh DATA.jsonl | TRAIN.jsonl TEST.jsonl \
#       [head mean|cls_pooler] [epochs 3] [batch 16] [lr 2e-4] [max_seq_length 128] [seed 42] \
#       [max_train: train on the first N training records only; 0 = all]
#
# e.g. the Debian sections set (examples/data/debian-sections.jsonl, its "split" field):
#   bench/classifier-quality.sh examples/data/debian-sections.jsonl mean 3 16 2e-4 128
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/services/engine/target/bench"
mkdir -p "$OUT"
MVN=("$ROOT/mvnw" -B -q ${MAVEN_REPO:+-Dmaven.repo.local=$MAVEN_REPO} ${MAVEN_OFFLINE:+-o})
"${MVN[@]}" -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true -pl services/engine -am
"${MVN[@]}" -f "$ROOT/services/engine/pom.xml" dependency:build-classpath -Dmdep.outputFile="$OUT/classpath.txt"
CP="$ROOT/services/engine/target/classes:$(cat "$OUT/classpath.txt")"
exec java -Xmx3g -Dai.djl.offline=true -DENGINE_CACHE_DIR="$HOME/.cache/tuneline/djl" \
  -Dai.djl.pytorch.num_threads="${THREADS:-2}" -Dai.djl.pytorch.num_interop_threads=1 -cp "$CP" \
  io.tuneline.engine.bench.ClassifierQuality "$@"
