#!/usr/bin/env bash
# Every fine-tuning method on the same data and budget, through the whole platform: each example
# job in JOBS is submitted to the one-machine stack (./platform up), trained by the worker,
# evaluated on the same held-out split and registered; the table (trainable parameters, the
# worker's peak resident memory, tokens/s, held-out quality with its 95% bootstrap interval, the
# untuned model's quality) is read back from the registry's job events and printed as Markdown
# (docs/methods.md keeps the last run's).
#
# Every job gets the same budget: EPOCHS passes over the same prepared data (the split seed is the
# examples'), each method keeping its own learning rate from its example file.
#
#   [EPOCHS=6] bench/method-comparison.sh [JOB_FILE...]   # default: examples/sentiment-*.json
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
if (($#)); then JOBS=("$@"); else
  JOBS=(examples/sentiment-full.json examples/sentiment-freeze.json examples/sentiment-inline.json
        examples/sentiment-qlora.json examples/sentiment-adapter-houlsby.json
        examples/sentiment-adapter-pfeiffer.json examples/sentiment-prefix.json
        examples/sentiment-prefix-projection.json examples/sentiment-p-tuning.json
        examples/sentiment-prompt.json)
fi
REGISTRY="${TUNELINE_REGISTRY:-http://127.0.0.1:8080}"
EPOCHS="${EPOCHS:-6}"
OUT="$ROOT/target/method-comparison"
mkdir -p "$OUT"
: > "$OUT/jobs.tsv"

./platform up
for job in "${JOBS[@]}"; do
  # One job at a time: each has the machine to itself, so memory and tokens/s compare.
  log="$OUT/$(basename "$job" .json).log"
  budgeted="$OUT/$(basename "$job")"
  python3 - "$job" "$EPOCHS" "$budgeted" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))
job.setdefault("hyperparameters", {})["epochs"] = int(sys.argv[2])
# Compared, not promoted: a version below the example's gate is still recorded.
job.setdefault("registration", {})["register_on_gate_failure"] = True
json.dump(job, open(sys.argv[3], "w"), indent=1)
PY
  ./platform submit "$budgeted" --new-id --watch > "$log" 2>&1 || true
  id=$(sed -n 's/^submitted job \([^ ]*\).*/\1/p' "$log" | head -1)
  [ -n "$id" ] || { echo "no job id for $job (see $log)" >&2; exit 1; }
  curl -sfN "$REGISTRY/api/v1/jobs/$id/events" > "$OUT/$id.sse"
  printf '%s\t%s\n' "$job" "$id" >> "$OUT/jobs.tsv"
done

python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
print("| job | method | trainable / total parameters | peak memory (MiB) | tokens/s | held-out macro F1 [95% CI] | untuned | status |")
print("|---|---|---|---|---|---|---|---|")
for line in (out / "jobs.tsv").read_text().splitlines():
    job, jid = line.split("\t")
    events = [json.loads(l[5:]) for l in (out / f"{jid}.sse").read_text().splitlines()
              if l.startswith("data:")]
    spec = json.loads(pathlib.Path(job).read_text())
    method = next(iter(spec.get("method", {"full": {}})))
    t = next((e["summary"] for e in events if e["type"].endswith("TrainingCompleted")), None)
    ev = next((e["summary"] for e in events if e["type"].endswith("EvaluationCompleted")), None)
    status = events[-1].get("job_status", "?") if events else "?"
    def ci(m):
        return f"{m['value']:.3f} [{m['ci_lower']:.3f}, {m['ci_upper']:.3f}]" if m else "-"
    if t is None:
        fail = next((e["summary"] for e in events if e["type"].endswith("JobFailed")), {})
        print(f"| {pathlib.Path(job).name} | {method} | - | - | - | - | - | failed: {fail.get('message', '?')[:80]} |")
        continue
    print(f"| {pathlib.Path(job).name} | {method} | {t['trainable_parameters']:,} / {t['total_parameters']:,} "
          f"({100 * t['trainable_parameters'] / t['total_parameters']:.2f}%) | "
          f"{t.get('peak_memory_bytes', 0) / 2**20:.0f} | {t.get('tokens_per_second', 0):.0f} | "
          f"{ci(ev and ev.get('tuned'))} | {ci(ev and ev.get('base'))} | {status} |")
PY
