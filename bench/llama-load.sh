#!/usr/bin/env bash
# Loads a Llama-3.2-1B-shaped checkpoint (random BF16 weights, sharded) under a 2 GB Java heap and
# generates 8 tokens with the key/value cache: the loader reads one tensor at a time, so the heap
# stays near the largest tensor (embed_tokens, 128256 x 2048) while the 4.9 GB float32 model lives
# in libtorch's memory. Prints one JSON line (load_s, peak_heap_mb, tokens_per_s), then compares
# the logits of the 7-token prompt with bench/llama_reference.py (plain PyTorch, python3-torch).
# Usage: bench/llama-load.sh [DIR]   (DIR defaults to services/engine/target/bench/llama-1b)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/services/engine/target/bench"
DIR="${1:-$OUT/llama-1b}"
mkdir -p "$OUT"
[[ -f "$DIR/config.json" ]] || /usr/bin/python3 "$ROOT/bench/llama_1b_checkpoint.py" "$DIR"
"$ROOT/mvnw" -B -q -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true -pl services/engine -am
"$ROOT/mvnw" -B -q -f "$ROOT/services/engine/pom.xml" dependency:build-classpath -Dmdep.outputFile="$OUT/classpath.txt"
java -Xmx2g -Dai.djl.offline=true -DENGINE_CACHE_DIR="$HOME/.cache/tuneline/djl" \
  -Dai.djl.pytorch.num_threads=2 -Dai.djl.pytorch.num_interop_threads=1 \
  -cp "$ROOT/services/engine/target/classes:$(cat "$OUT/classpath.txt")" \
  io.tuneline.engine.bench.LlamaLoad "$DIR" 8 "$OUT/llama-1b.engine.json" 2> /dev/null | grep '^{'
/usr/bin/python3 - "$DIR" "$OUT" "$ROOT/bench/llama_reference.py" <<'PY'
import json, subprocess, sys, torch
model_dir, out, script = sys.argv[1:]
engine = json.load(open(out + "/llama-1b.engine.json"))
request = {"cases": [{"model_dir": model_dir, "input_ids": engine["input_ids"],
                      "attention_mask": None, "output": out + "/llama-1b.reference.json"}]}
json.dump(request, open(out + "/llama-1b.request.json", "w"))
subprocess.run(["/usr/bin/python3", script, out + "/llama-1b.request.json"], check=True)
a = torch.tensor(engine["logits"])
b = torch.tensor(json.load(open(out + "/llama-1b.reference.json"))["logits"])
print(json.dumps({"max_abs_logit_difference": (a - b).abs().max().item(),
                  "reference_logit_std": b.std().item(),
                  "same_argmax": bool((a.argmax(-1) == b.argmax(-1)).all())}))
PY
