#!/usr/bin/env bash
# Submits examples/debian-sections-lora.json on the one-machine stack: the dataset (900 KB, 3,200
# records) is too large to travel inline in the job event, so it is uploaded first through the
# ingestion service (POST /api/v1/datasets, docs/datasets.md "Uploads and limits") and the job's
# dataset.uri is set to the s3:// URI the upload answers. Extra arguments go to ./platform submit.
#
#   ./platform up && examples/data/submit-debian-sections.sh --new-id --watch
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
INGESTION="${TUNELINE_INGESTION_URL:-http://127.0.0.1:8081}"
auth=()
[[ -n "${TUNELINE_UPLOAD_TOKEN:-}" ]] && auth=(-H "Authorization: Bearer $TUNELINE_UPLOAD_TOKEN")
answer="$(curl -sSf "${auth[@]}" --data-binary @"$ROOT/examples/data/debian-sections.jsonl" \
  "$INGESTION/api/v1/datasets?filename=debian-sections.jsonl")"
job="$(mktemp --suffix=.json)"
trap 'rm -f "$job"' EXIT
python3 - "$ROOT/examples/debian-sections-lora.json" "$answer" "$job" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))
job["dataset"]["uri"] = json.loads(sys.argv[2])["uri"]
json.dump(job, open(sys.argv[3], "w"), indent=1)
print("dataset uploaded to " + job["dataset"]["uri"])
PY
"$ROOT/platform" submit "$job" "$@"
