#!/usr/bin/env bash
# The load test of the one-machine stack without faults, once per number of training runs at a time
# in SLOTS (the local executor's max-concurrent-runs; default 1 and 2): N small jobs (a random 2-layer BERT of
# width 32, LoRA, one epoch) published at once to two instances of each stateless service. Prints
# each run's table (stage p50/p95, time to the last job) and the speed-up of each slot count over
# one slot.
#
#   [SLOTS="1 2 4"] bench/load.sh [JOBS]   # default 100 jobs, SLOTS="1 2": about 10 minutes on 2 idle cores
#
# The same test with faults injected (SIGKILLs, restarts) is part of the README's test command.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
JOBS="${1:-100}"
OUT="$ROOT/e2e/target/bench-load"
mkdir -p "$OUT"
"$ROOT/mvnw" -B -q ${MVN_FLAGS:-} -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true
declare -A took
SLOTS="${SLOTS:-1 2}"
for c in $SLOTS; do
  "$ROOT/mvnw" -B -q ${MVN_FLAGS:-} -f "$ROOT/pom.xml" verify -Pe2e -pl e2e -Dspotless.check.skip=true \
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
first="${SLOTS%% *}"
for c in $SLOTS; do
  [[ $c == "$first" ]] && continue
  python3 -c "print(f'speed-up of $c training runs at once over $first: {${took[$first]} / ${took[$c]}:.2f}x (${took[$first]} s -> ${took[$c]} s to the last job)')"
done
