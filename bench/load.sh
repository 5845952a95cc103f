#!/usr/bin/env bash
# The load test of the one-machine stack without faults, once with one training run at a time and
# once with two (the local executor's max-concurrent-runs): N small jobs (a random 2-layer BERT of
# width 32, LoRA, one epoch) published at once to two instances of each stateless service. Prints
# each run's table (stage p50/p95, time to the last job) and the speed-up of the second slot.
#
#   bench/load.sh [JOBS]          # default 100 jobs; about 10 minutes on 2 idle cores
#
# The same test with faults injected (SIGKILLs, restarts) is part of the README's test command.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
JOBS="${1:-100}"
OUT="$ROOT/e2e/target/bench-load"
mkdir -p "$OUT"
"$ROOT/mvnw" -B -q -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true
declare -A took
for c in 1 2; do
  "$ROOT/mvnw" -B -q -f "$ROOT/pom.xml" verify -Pe2e -pl e2e -Dspotless.check.skip=true \
    -Dtest=ScaleOutEndToEndTest -Dsurefire.failIfNoSpecifiedTests=false \
    -Dtuneline.load.jobs="$JOBS" -Dtuneline.load.concurrency="$c" -Dtuneline.load.faults=false \
    > "$OUT/run-$c.log" 2>&1 || { tail -50 "$OUT/run-$c.log"; exit 1; }
  cp "$ROOT/e2e/target/load.md" "$OUT/load-$c.md"
  took[$c]="$(grep -o "time from publishing to the last job's end | [0-9]* s" "$OUT/load-$c.md" | grep -o '[0-9]* s$' | tr -d ' s')"
  echo "## $JOBS jobs, $c training run(s) at once"
  echo
  cat "$OUT/load-$c.md"
  echo
done
python3 -c "print(f'speed-up of 2 training runs at once over 1: {${took[1]} / ${took[2]}:.2f}x (${took[1]} s -> ${took[2]} s to the last job)')"
