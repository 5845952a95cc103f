#!/usr/bin/env bash
# One local file stored with ArtifactStore.put in the services' part size (16 MiB), its parts sent
# one after the other and several at once (tuneline.store.upload-concurrency), against the S3
# server on local disk that ./platform runs (S3Proxy, in the same JVM), the settings taking turns.
#
#   bench/store-upload.sh [MEGABYTES] [CONCURRENCIES] [ROUNDS]     # default 76 MB, 1,2,4, 7 rounds
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MB="${1:-76}"
SETTINGS="${2:-1,2,4}"
ROUNDS="${3:-7}"
OUT="$ROOT/services/testing/target/bench"
mkdir -p "$OUT"

"$ROOT/mvnw" -B -q ${MVN_FLAGS:-} -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true \
  -pl services/testing -am
"$ROOT/mvnw" -B -q ${MVN_FLAGS:-} -f "$ROOT/services/testing/pom.xml" test-compile -Dspotless.check.skip=true
"$ROOT/mvnw" -B -q ${MVN_FLAGS:-} -f "$ROOT/services/testing/pom.xml" dependency:build-classpath \
  -Dmdep.includeScope=test -Dmdep.outputFile="$OUT/classpath.txt"
CP="$ROOT/services/testing/target/test-classes:$ROOT/services/testing/target/classes:$(cat "$OUT/classpath.txt")"

rm -rf "$OUT/s3"
java -Xmx512m -Djava.util.logging.manager=org.jboss.logmanager.LogManager \
  -Dlogging.configuration="file:$ROOT/deploy/local/cli-logging.properties" -cp "$CP" \
  io.tuneline.testing.bench.StoreUploadThroughput "$OUT" "$MB" "$SETTINGS" "$ROUNDS" 2> "$OUT/stderr.log"
