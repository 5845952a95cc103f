#!/usr/bin/env bash
# Load test of the serving service on the one-machine stack: the demo's LoRA MiniLM classifier
# (registered by ./platform demo when it is not yet) served by ./platform serve, then closed-loop
# clients at several concurrencies (bench/serving_load.py): requests/s, inputs/s, latency
# p50/p95/p99, errors and the mean engine batch that request batching formed. With CHAT=1 also a
# causal LM through /v1/completions: a small random Qwen3-layout base with the real tokenizer
# (./platform base-model qwen3) tuned by examples/chat-qwen3-lora.json.
#
#   [REQUESTS=200] [CONCURRENCY=1,4,16] [INPUTS=1] [CHAT=0] bench/serving-load.sh
# Leaves the stack running (./platform down stops it). Results: target/serving-load/*.json.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
REQUESTS="${REQUESTS:-200}"
CONCURRENCY="${CONCURRENCY:-1,4,16}"
INPUTS="${INPUTS:-1}"
OUT="$ROOT/target/serving-load"
REGISTRY="${TUNELINE_REGISTRY:-http://127.0.0.1:8080}"
AUTH="Authorization: Bearer ${TUNELINE_API_TOKEN:-tuneline-local-token}"
mkdir -p "$OUT"

latest() {  # the latest registered version of a model, empty when none
  curl -sf -H "$AUTH" "$REGISTRY/api/v1/models/$1" 2> /dev/null \
    | python3 -c 'import json,sys; v=json.load(sys.stdin).get("latest_version"); print(v or "")' 2> /dev/null || true
}

./platform up > /dev/null
[[ -n "$(latest sentiment-demo)" ]] || ./platform demo
./platform serve "sentiment-demo:$(latest sentiment-demo)" > /dev/null
# The demo's own texts, one JSON object per line.
python3 -c '
import json, sys
for r in json.load(open("examples/sentiment-inline.json"))["dataset"]["inline"]["records"]:
    print(json.dumps({"text": r["text"]}))' > "$OUT/sentiment-texts.jsonl"
echo "classifier sentiment-demo:$(latest sentiment-demo), $INPUTS text(s) per request, $REQUESTS requests per row:"
python3 bench/serving_load.py http://127.0.0.1:8085 "sentiment-demo:$(latest sentiment-demo)" \
  "$OUT/sentiment-texts.jsonl" --requests "$REQUESTS" --concurrency "$CONCURRENCY" \
  --inputs "$INPUTS" --json "$OUT/classify.json"

if [[ "${CHAT:-0}" == 1 ]]; then
  model=$(python3 -c 'import json; print(json.load(open("examples/chat-qwen3-lora.json"))["registration"]["model_name"])')
  if [[ -z "$(latest "$model")" ]]; then
    ./platform base-model qwen3 > /dev/null
    ./platform submit examples/chat-qwen3-lora.json --new-id --watch > /dev/null
  fi
  python3 -c '
import json
job = json.load(open("examples/chat-qwen3-lora.json"))
for r in job["dataset"]["inline"]["records"]:
    user = [m["content"] for m in r.get("messages", []) if m["role"] == "user"]
    print(json.dumps({"prompt": r.get("prompt") or user[0]}))' > "$OUT/chat-prompts.jsonl"
  echo "causal LM $model:$(latest "$model") through /v1/completions, 16 greedy tokens, $REQUESTS requests per row:"
  python3 bench/serving_load.py http://127.0.0.1:8085 "$model:$(latest "$model")" "$OUT/chat-prompts.jsonl" \
    --task completions --requests "$REQUESTS" --concurrency "$CONCURRENCY" --max-tokens 16 \
    --json "$OUT/completions.json"
fi
