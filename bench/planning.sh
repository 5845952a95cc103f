#!/usr/bin/env bash
# The pre-flight estimate against measurement (docs/planning.md): for every model and method of
# the training benchmark (MODELS="minilm gpt2"; METHODS: full freeze lora qlora adapter prefix
# prompt p_tuning) one engine process runs 3 warm-up steps, 10 timed steps and STEPS more
# (bench.PlanningCalibration), and prints its peak resident memory (VmHWM) and step times beside
# the estimate computed from the model's config alone. Writes the Markdown table to stdout and
# the raw lines to services/engine/target/bench/planning.jsonl.
#
#   [MODELS="minilm gpt2"] [METHODS="..."] bench/planning.sh [STEPS]      # default 10
#   TABLE_ONLY=1 bench/planning.sh     # the table again from the saved measurements, with the
#                                      # estimator as it is now (after fitting its constants)
#
# Set MAVEN_ARGS (e.g. "-o -Dmaven.repo.local=/work/m2-plan") to build offline.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STEPS="${1:-10}"
MODELS="${MODELS:-minilm gpt2}"
METHODS="${METHODS:-full freeze lora qlora adapter prefix prompt p_tuning}"
OUT="$ROOT/services/engine/target/bench"
mkdir -p "$OUT"
# shellcheck disable=SC2086
"$ROOT/mvnw" -B -q ${MAVEN_ARGS:-} -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true -pl services/engine -am
# shellcheck disable=SC2086
"$ROOT/mvnw" -B -q ${MAVEN_ARGS:-} -f "$ROOT/services/engine/pom.xml" dependency:build-classpath -Dmdep.outputFile="$OUT/classpath.txt"
# A copy of the classes, so a rebuild while the runs go on does not change them underneath.
rm -rf "$OUT/planning-classes" && cp -r "$ROOT/services/engine/target/classes" "$OUT/planning-classes"
CP="$OUT/planning-classes:$(cat "$OUT/classpath.txt")"
JAVA=(java -Xmx3g -Dai.djl.offline=true -DENGINE_CACHE_DIR="$HOME/.cache/tuneline/djl"
  -Dai.djl.pytorch.num_threads=2 -Dai.djl.pytorch.num_interop_threads=1 -cp "$CP"
  io.tuneline.engine.bench.PlanningCalibration)

if [[ -z ${TABLE_ONLY:-} ]]; then
  : > "$OUT/planning.jsonl"
  for model in $MODELS; do
    for method in $METHODS; do
      "${JAVA[@]}" "$model" "$method" "$STEPS" "$OUT" 2> "$OUT/planning-$model-$method.log" | grep '^{' >> "$OUT/planning.jsonl" \
        || echo "$model $method failed: see $OUT/planning-$model-$method.log" >&2
    done
  done
fi
"${JAVA[@]}" reestimate "$OUT/planning.jsonl" "$OUT/planning-estimated.jsonl"

python3 - "$OUT/planning-estimated.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| model | method | trainable (measured / estimated) | peak MiB measured | peak MiB estimated | error | s/step measured (steps 11-) | s/step estimated a priori | error | s/step after 10 steps | error |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
worst_mem = worst_time = 0
for r in rows:
    mem_err = r["estimated_peak_mib"] / r["peak_mib"] - 1
    step = r["seconds"] / r["steps"]
    prior_err = r["estimated_step_seconds"] / step - 1
    refined = r["refined_seconds"] / r["steps"]
    time_err = refined / step - 1
    worst_mem = max(worst_mem, abs(mem_err)); worst_time = max(worst_time, abs(time_err))
    same = "" if r["trainable"] == r["estimated_trainable"] else " (differ)"
    print(f"| {r['model']} | {r['method']} | {r['trainable']:,} / {r['estimated_trainable']:,}{same} | {r['peak_mib']} | {r['estimated_peak_mib']} | {mem_err:+.0%} | {step:.3f} | {r['estimated_step_seconds']:.3f} | {prior_err:+.0%} | {refined:.3f} | {time_err:+.0%} |")
print(f"\nWorst peak-memory error {worst_mem:.0%} (target 25%); worst time error after 10 steps {worst_time:.0%} (target 50%).")
PY
