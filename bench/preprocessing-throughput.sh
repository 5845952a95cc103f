#!/usr/bin/env bash
# Preprocessing throughput on a synthetic review dataset (about 1.3 kB per record, like IMDB's):
# the records streamed from an S3 server on local disk, cleaned, deduplicated (exact and MinHash),
# tokenized with MiniLM's tokenizer, split and written back, in a JVM whose heap is smaller than
# the data. Reported next to MiniLM's tokenizer alone on the same records and the raw read speed of
# the same object through the same store client, both in the same run, as ratios.
#
#   bench/preprocessing-throughput.sh [MEGABYTES] [HEAP]     # default 1024 MB through -Xmx512m
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MB="${1:-1024}"
HEAP="${2:-512m}"
OUT="$ROOT/services/preprocessing/target/bench"
mkdir -p "$OUT"

"$ROOT/mvnw" -B -q -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true \
  -pl services/preprocessing -am
"$ROOT/mvnw" -B -q -f "$ROOT/services/preprocessing/pom.xml" test-compile -Dspotless.check.skip=true
"$ROOT/mvnw" -B -q -f "$ROOT/services/preprocessing/pom.xml" dependency:build-classpath \
  -Dmdep.includeScope=test -Dmdep.outputFile="$OUT/classpath.txt"
CP="$ROOT/services/preprocessing/target/test-classes:$ROOT/services/preprocessing/target/classes:$(cat "$OUT/classpath.txt")"

rm -rf "$OUT/s3"   # the dataset file is kept between runs; the store is not
java "-Xmx$HEAP" -Dai.djl.offline=true -DDJL_CACHE_DIR="$HOME/.cache/tuneline/djl" \
  -Djava.util.logging.manager=org.jboss.logmanager.LogManager -cp "$CP" \
  io.tuneline.preprocessing.bench.PreprocessingThroughput "$OUT" "$MB" 2> "$OUT/stderr.log" \
  | grep '^{' | tail -1 > "$OUT/result.json"

/usr/bin/python3 - "$OUT/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["prepared"]
c, s = p["counts"], p["stats"]
print("| data | heap | records | preprocessing records/s | preprocessing MB/s | tokenizer alone MB/s | preprocessing / tokenizer | raw read MB/s | preprocessing / raw read |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
print(f"| {r['bytes']/2**20:,.0f} MiB JSONL | -Xmx{r['max_heap_mb']}m | {r['records']:,} | {r['records_per_second']:,} "
      f"| {r['mb_per_second']} | {r['tokenizer_mb_per_second']} | {r['ratio_to_tokenizer']} | {r['raw_read_mb_per_second']} | {r['ratio_to_raw_read']} |")
print(f"\nCPU seconds: preprocessing {r['cpu_seconds']}, tokenizer alone {r['tokenizer_cpu_seconds']} (mean of before and after), "
      f"ratio {r['cpu_ratio_to_tokenizer']}; tokenizer alone {r['tokenizer_seconds_before']} s before, {r['tokenizer_seconds_after']} s after; "
      f"pass 1 {r['pass1_seconds']} s, pass 2 {r['pass2_seconds']} s (writing the splits {r['pass2_write_seconds']} s, "
      f"storing them {r['pass2_store_seconds']} s).")
print(f"\n{r['seconds']} s on {r['cores']} cores; kept train {c['train']} / validation {c['validation']} / test {c['test']}; "
      f"removed {s.get('exactDuplicatesRemoved', 0)} exact and {s.get('nearDuplicatesRemoved', 0)} near-duplicates; "
      f"{s.get('truncatedExamples', 0)} truncated to 128 tokens; train token lengths p50 {s['tokenLengths']['p50']}, p95 {s['tokenLengths']['p95']}.")
PY
