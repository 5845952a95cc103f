#!/usr/bin/env bash
# The pre-flight estimate against measurement (docs/planning.md): for every model and method of
# the training benchmark (MODELS="minilm gpt2 llama"; METHODS: full freeze lora qlora adapter prefix
# prompt p_tuning, and for llama also LLAMA_METHODS: activation checkpointing and bf16) one engine
# process trains 10 + STEPS steps as one run (bench.PlanningCalibration) and prints its peak
# resident memory (VmHWM), its total time and the total the run itself predicted at step 10 (its
# progress events' eta_seconds plus the time elapsed) beside the estimate computed from the model's
# config alone. Writes the Markdown table to stdout and the raw lines to
# services/engine/target/bench/planning.jsonl.
#
#   [MODELS="minilm gpt2 llama"] [METHODS="..."] bench/planning.sh [STEPS]      # default 10
#   TABLE_ONLY=1 bench/planning.sh     # the table again from the saved measurements, with the
#                                      # estimator as it is now (after fitting its constants)
#
# Set MAVEN_ARGS (e.g. "-o -Dmaven.repo.local=/work/m2-plan") to build offline.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STEPS="${1:-10}"
MODELS="${MODELS:-minilm gpt2 llama}"
METHODS="${METHODS:-full freeze lora qlora adapter prefix prompt p_tuning}"
# The Llama family is the one the engine trains with activation checkpointing (":ckpt", the
# worker's default for QLoRA) and the workload that applies a precision ("@bf16").
LLAMA_METHODS="${LLAMA_METHODS-qlora:ckpt lora:ckpt lora@bf16 lora@bf16:ckpt}"
OUT="$ROOT/services/engine/target/bench"
mkdir -p "$OUT"
# shellcheck disable=SC2086
"$ROOT/mvnw" -B -q ${MAVEN_ARGS:-} -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true -pl services/engine -am
# shellcheck disable=SC2086
"$ROOT/mvnw" -B -q ${MAVEN_ARGS:-} -f "$ROOT/services/engine/pom.xml" dependency:build-classpath -Dmdep.outputFile="$OUT/classpath.txt"
# A copy of the classes, so a rebuild while the runs go on does not change them underneath.
rm -rf "$OUT/planning-classes" && cp -r "$ROOT/services/engine/target/classes" "$OUT/planning-classes"
CP="$OUT/planning-classes:$(cat "$OUT/classpath.txt")"
# The CPU training worker's environment and JVM options (./platform runs every worker with them,
# bench/training-throughput.sh the engine's side too), so memory and time are a job's.
mapfile -t WORKER_ENV < <(grep -v '^#' "$ROOT/deploy/local/training-worker.env" | grep .)
JAVA=(env "${WORKER_ENV[@]}" java @"$ROOT/deploy/local/training-worker.jvm" -Xmx3g -Dai.djl.offline=true -DENGINE_CACHE_DIR="$HOME/.cache/tuneline/djl"
  -Dai.djl.pytorch.num_threads=2 -Dai.djl.pytorch.num_interop_threads=1 -cp "$CP"
  io.tuneline.engine.bench.PlanningCalibration)

if [[ -z ${TABLE_ONLY:-} ]]; then
  : > "$OUT/planning.jsonl"
  for model in $MODELS; do
    extra=""
    [[ $model == llama ]] && extra="$LLAMA_METHODS"
    for method in $METHODS $extra; do
      log="$OUT/planning-$model-${method//[:@]/-}.log"
      "${JAVA[@]}" "$model" "$method" "$STEPS" "$OUT" 2> "$log" | grep '^{' >> "$OUT/planning.jsonl" \
        || echo "$model $method failed: see $log" >&2
    done
  done
fi
"${JAVA[@]}" reestimate "$OUT/planning.jsonl" "$OUT/planning-estimated.jsonl"

python3 - "$OUT/planning-estimated.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| model | method | trainable (measured / estimated) | peak MiB measured | peak MiB estimated | error | total s measured | pre-flight total s | error | refined at step 10 | error |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
worst_mem = worst_prior = worst_refined = 0
for r in rows:
    mem_err = r["estimated_peak_mib"] / r["peak_mib"] - 1
    total = r["total_seconds"]
    prior_err = r["estimated_total_seconds"] / total - 1
    refined_err = r["refined_total_seconds"] / total - 1
    worst_mem = max(worst_mem, abs(mem_err))
    worst_prior = max(worst_prior, abs(prior_err))
    worst_refined = max(worst_refined, abs(refined_err))
    same = "" if r["trainable"] == r["estimated_trainable"] else " (differ)"
    print(f"| {r['model']} | {r['method']} | {r['trainable']:,} / {r['estimated_trainable']:,}{same} | {r['peak_mib']} | {r['estimated_peak_mib']} | {mem_err:+.0%} | {total:.1f} | {r['estimated_total_seconds']:.1f} | {prior_err:+.0%} | {r['refined_total_seconds']:.1f} | {refined_err:+.0%} |")
within_mem = sum(abs(r["estimated_peak_mib"] / r["peak_mib"] - 1) <= 0.25 for r in rows)
within_refined = sum(abs(r["refined_total_seconds"] / r["total_seconds"] - 1) <= 0.5 for r in rows)
print(f"\nPeak memory within 25%: {within_mem} of {len(rows)} (worst {worst_mem:.0%}); total time refined at step 10 within 50%: {within_refined} of {len(rows)} (worst {worst_refined:.0%}); pre-flight total time worst {worst_prior:.0%}.")
PY
