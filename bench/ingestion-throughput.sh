#!/usr/bin/env bash
# Ingestion throughput: one large JSON Lines object in the platform's store (an S3 server on local
# disk in the same JVM) ingested as an s3:// dataset (copied and validated; the generated records
# are canonical already, so the raw copy is the records and no records.jsonl is written), against a
# raw read of the same object from the same store, alternately in one JVM; the median of the
# per-pair ratios is the result (target 0.8x). Each pair also times one server-side copy of the
# object, which ingestion must make (raw/): its ratio to the raw read is the most ingestion can
# reach on this store.
#
#   bench/ingestion-throughput.sh [MEGABYTES] [PAIRS]     # default 256 MB, 3 pairs
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MB="${1:-256}"
PAIRS="${2:-3}"
OUT="$ROOT/services/ingestion/target/bench"
mkdir -p "$OUT"

"$ROOT/mvnw" -B -q ${MVN_FLAGS:-} -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true \
  -pl services/ingestion -am
"$ROOT/mvnw" -B -q ${MVN_FLAGS:-} -f "$ROOT/services/ingestion/pom.xml" test-compile -Dspotless.check.skip=true
"$ROOT/mvnw" -B -q ${MVN_FLAGS:-} -f "$ROOT/services/ingestion/pom.xml" dependency:build-classpath \
  -Dmdep.includeScope=test -Dmdep.outputFile="$OUT/classpath.txt"
CP="$ROOT/services/ingestion/target/test-classes:$ROOT/services/ingestion/target/classes:$(cat "$OUT/classpath.txt")"

rm -rf "$OUT/s3"   # the dataset file is kept between runs; the store is not
# Warnings only: the S3 server in this JVM otherwise formats debug strings for every request.
java -Xmx512m -Djava.util.logging.manager=org.jboss.logmanager.LogManager \
  -Dlogging.configuration="file:$ROOT/deploy/local/cli-logging.properties" -cp "$CP" \
  io.tuneline.ingestion.bench.IngestionThroughput "$OUT" "$MB" "$PAIRS" 2> "$OUT/stderr.log" \
  | grep '^{' | tail -1 > "$OUT/result.json"
rm -rf "$OUT/s3"

/usr/bin/python3 - "$OUT/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("| data | records | ingestion MB/s | raw read MB/s | ingestion / raw read (median of pairs) | one server-side copy MB/s (/ raw read) | validation alone MB/s |")
print("|---|---:|---:|---:|---:|---:|---:|")
print(f"| {r['bytes']/2**20:,.0f} MiB JSONL | {r['records']:,} | {r['ingestion_mb_per_second']} | {r['raw_read_mb_per_second']} "
      f"| {r['ratio_median']:.2f} (min {r['ratio_min']:.2f}, max {r['ratio_max']:.2f}) "
      f"| {r['server_copy_mb_per_second']} ({r['server_copy_ratio_median']:.2f}) | {r['validation_alone_mb_per_second']} |")
print("\npairs (raw read MB/s, ingestion MB/s, ratio, server-side copy / raw read):",
      "; ".join(f"{p['raw_read_mb_per_second']}, {p['ingestion_mb_per_second']}, {p['ratio']:.2f}, {p['server_copy_ratio']:.2f}" for p in r['pairs']))
print(f"\nCPU seconds of the JVM (client and S3 server), median: raw read {r['raw_read_cpu_seconds']}, ingestion {r['ingestion_cpu_seconds']}, one server-side copy {r.get('server_copy_cpu_seconds', '?')}.")
print(f"\nrecords announced: {r.get('records_object', '?')}.")
print(f"\n{len(r['pairs'])} pairs on {r['cores']} cores, -Xmx{r['max_heap_mb']}m.")
PY
