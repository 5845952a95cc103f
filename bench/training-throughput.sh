#!/usr/bin/env bash
# Training throughput of the engine (DJL + libtorch 2.7.1) against plain PyTorch (Debian's
# python3-torch) on the same model, method, batch and 2 threads, for each model in MODELS:
#   minilm  the all-MiniLM-L6-v2 classifier, 8 x 32 tokens   (bench/torch_minilm_train.py)
#   gpt2    a small random GPT-2 causal LM, 8 x 64 tokens     (bench/torch_gpt2_train.py)
#   llama   a small random Llama-layout causal LM (GQA), 8 x 64 tokens (bench/torch_llama_train.py);
#           besides full, freeze and lora also lora@bf16 (precision bf16, both sides) and qlora
#           (the engine alone: the peer has no NF4)
# The two run in turn, REPS times per method, so a drift of the shared machine hits both alike;
# the ratio is taken per pair and its median reported. One table per model.
#
#   apt-get install python3-torch libopenblas0-openmp        # the peer and a fast BLAS for it
#   [MODELS="minilm gpt2"] [GPT2_STEPS=STEPS] bench/training-throughput.sh [STEPS] [REPS]
#                                                            # default 20 steps, 3 pairs
#
# PROFILE=1: instead of timed pairs, one profiled run per side, model and method: each phase's
# time per step (data, forward, backward, clip, optimizer, the loop around them) and the native
# calls it makes (the engine's JNI calls; PyTorch's outermost aten ops). See bench.StepProfile.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STEPS="${1:-20}"
REPS="${2:-3}"
MODELS="${MODELS:-minilm gpt2}"
# A GPT-2 step costs 5-10 MiniLM steps; fewer of them keep the run within minutes.
GPT2_STEPS="${GPT2_STEPS:-$STEPS}"
PROFILE="${PROFILE:-}"
OUT="$ROOT/services/engine/target/bench"
mkdir -p "$OUT"

"$ROOT/mvnw" -B -q -f "$ROOT/pom.xml" install -DskipTests -Dspotless.check.skip=true -pl services/engine -am
"$ROOT/mvnw" -B -q -f "$ROOT/services/engine/pom.xml" dependency:build-classpath -Dmdep.outputFile="$OUT/classpath.txt"
CP="$ROOT/services/engine/target/classes:$(cat "$OUT/classpath.txt")"
# The CPU training worker's environment and JVM options (./platform runs every worker with them);
# the peer keeps its default environment.
mapfile -t WORKER_ENV < <(grep -v '^#' "$ROOT/deploy/local/training-worker.env" | grep .)
JAVA=(env "${WORKER_ENV[@]}" java @"$ROOT/deploy/local/training-worker.jvm" -Xmx3g -Dai.djl.offline=true -DENGINE_CACHE_DIR="$HOME/.cache/tuneline/djl"
  -Dai.djl.pytorch.num_threads=2 -Dai.djl.pytorch.num_interop_threads=1 -cp "$CP"
  io.tuneline.engine.bench.TrainingThroughput)
# Debian's torch defaults to the reference BLAS; the OpenMP OpenBLAS makes it a fair peer. Without
# it the peer runs 10-30x slower and every ratio is void (measured 2026-12-04: 63-94 tokens/s
# against 559-3194), so refuse to run rather than print such ratios.
if [[ ! -e /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 ]]; then
  echo "bench/training-throughput.sh: the PyTorch peer needs the OpenMP OpenBLAS" \
    "(apt-get install libopenblas0-openmp); without it the ratios mean nothing" >&2
  exit 1
fi
export LD_LIBRARY_PATH="/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMP_NUM_THREADS=2

peer() {  # MODEL METHOD STEPS [profile]: the PyTorch side's command
  case "$1" in
    minilm) /usr/bin/python3 "$ROOT/bench/torch_minilm_train.py" "$2" "$3" "$OUT/minilm.safetensors" "${@:4}" ;;
    gpt2) /usr/bin/python3 "$ROOT/bench/torch_gpt2_train.py" "$2" "$3" "$OUT/gpt2" "${@:4}" ;;
    llama) /usr/bin/python3 "$ROOT/bench/torch_llama_train.py" "$2" "$3" "$OUT/llama" "${@:4}" ;;
    *) echo "unknown model $1 (minilm, gpt2 or llama)" >&2; return 1 ;;
  esac
}

: > "$OUT/results.jsonl"
: > "$OUT/profile.jsonl"
# This machine's matmul peak through each side's libtorch, before and after the pairs (a drift of
# the shared machine shows as a gap between the two): the yardstick of the full fine-tuning step's
# achieved GFLOP/s, which the PyTorch side counts on its step (step_gflop, autograd profiler).
matmul_peaks() {
  [[ -n $PROFILE ]] && return 0
  java -Xmx1g -Dai.djl.offline=true -DENGINE_CACHE_DIR="$HOME/.cache/tuneline/djl" \
    -Dai.djl.pytorch.num_threads=2 -Dai.djl.pytorch.num_interop_threads=1 -cp "$CP" \
    io.tuneline.engine.bench.MatmulPeak 2048 10 2> /dev/null | grep '^{' >> "$OUT/results.jsonl"
  /usr/bin/python3 "$ROOT/bench/matmul_peak.py" 2048 10 >> "$OUT/results.jsonl"
}
matmul_peaks
for model in $MODELS; do
  steps=$STEPS
  [[ $model == gpt2 ]] && steps=$GPT2_STEPS
  # Fresh weights for the PyTorch side (a changed shape must not meet a stale file); this
  # untimed run also unpacks libtorch once.
  rm -rf "$OUT/minilm.safetensors" "$OUT/gpt2" "$OUT/llama"
  "${JAVA[@]}" "$model" lora 1 "$OUT" > /dev/null 2>&1
  methods="full freeze lora"
  [[ $model == llama ]] && methods="full freeze lora lora@bf16 qlora"
  for method in $methods; do
    if [[ -n $PROFILE ]]; then
      # stderr keeps the engine's JNI calls by method, per phase (StepProfile.byName).
      "${JAVA[@]}" "$model" "$method" "$steps" "$OUT" profile 2> "$OUT/jni-$model-$method.txt" \
        | grep '^{' >> "$OUT/profile.jsonl"
      [[ $method == qlora ]] || peer "$model" "$method" "$steps" profile >> "$OUT/profile.jsonl"
      continue
    fi
    for ((i = 1; i <= REPS; i++)); do
      "${JAVA[@]}" "$model" "$method" "$steps" "$OUT" 2> /dev/null | grep '^{' >> "$OUT/results.jsonl"
      [[ $method == qlora ]] || peer "$model" "$method" "$steps" >> "$OUT/results.jsonl"
    done
  done
done

matmul_peaks

if [[ -n $PROFILE ]]; then
  /usr/bin/python3 - "$OUT/profile.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
phases = ("data", "forward", "backward", "clip", "optimizer", "loop", "step")
print("\nms per step (native calls per step): the engine's JNI calls, PyTorch's outermost aten ops\n")
print("| model | method | side | " + " | ".join(phases) + " |")
print("|---|---|---|" + "---:|" * len(phases))
for r in rows:
    p = r["profile"]
    key = "jni" if r["impl"] == "djl" else "ops"
    cells = " | ".join(f"{p[ph]['ms']:.1f} ({p[ph][key]:.0f})" for ph in phases)
    print(f"| {r['model']} | {r['method']} | {'engine' if r['impl'] == 'djl' else 'PyTorch'} | {cells} |")
steps = ", ".join(f"{m} {r['steps']}" for m, r in {r["model"]: r for r in rows}.items())
print(f"\nProfiled steps per line after 3 warm-up steps: {steps}; PyTorch {rows[-1].get('torch')}.")
PY
  exit 0
fi

/usr/bin/python3 - "$OUT/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
peaks = [r for r in rows if r["model"] == "matmul"]
rows = [r for r in rows if r["model"] != "matmul"]
med = lambda xs, k: statistics.median(x[k] for x in xs)
for model in dict.fromkeys(r["model"] for r in rows):
    print(f"\n{model}:\n")
    print("| method | trainable params | DJL tokens/s | PyTorch tokens/s | DJL / PyTorch (median of pairs) | DJL peak RSS MiB | PyTorch peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for m in dict.fromkeys(r["method"] for r in rows if r["model"] == model):
        d = [r for r in rows if r["model"] == model and r["method"] == m and r["impl"] == "djl"]
        p = [r for r in rows if r["model"] == model and r["method"] == m and r["impl"] == "pytorch"]
        if d and not p:  # the engine alone (qlora: the peer has no NF4)
            print(f"| {m} | {d[0]['trainable']:,} | {med(d,'tokens_per_second'):.0f} | - | - "
                  f"| {med(d,'peak_rss_mb'):.0f} | - |")
            continue
        if not d or not p:
            continue
        # Differing counts mean the two sides set up different methods: the ratio would be void.
        trainable = f"{d[0]['trainable']:,}" if d[0]["trainable"] == p[0]["trainable"] else \
            f"MISMATCH djl {d[0]['trainable']:,} / pytorch {p[0]['trainable']:,}"
        ratios = [a["tokens_per_second"] / b["tokens_per_second"] for a, b in zip(d, p)]
        print(f"| {m} | {trainable} | {med(d,'tokens_per_second'):.0f} | {med(p,'tokens_per_second'):.0f} "
              f"| {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}) "
              f"| {med(d,'peak_rss_mb'):.0f} | {med(p,'peak_rss_mb'):.0f} |")
    p = [r for r in rows if r["model"] == model and r["impl"] == "pytorch"]
    first = next(r for r in rows if r["model"] == model)
    d = [r for r in rows if r["model"] == model and r["impl"] == "djl" and r["method"] == first["method"]]
    print(f"\nPyTorch {p[0].get('torch')}, {len(d)} pairs of {d[0]['steps']} steps per method.")

# Full fine-tuning's achieved GFLOP/s: the step's matmul FLOPs as the PyTorch side counted them
# (the same model and batch on both sides), times each side's steps per second, against the
# matmul peak of its own libtorch measured in this run (the median of the runs before and after).
full = [m for m in dict.fromkeys(r["model"] for r in rows)
        if any(r["model"] == m and r["method"] == "full" and "step_gflop" in r for r in rows)]
if peaks and full:
    peak = {impl: statistics.median(r["gflops_median"] for r in peaks if r["impl"] == impl)
            for impl in ("djl", "pytorch")}
    spread = {impl: ", ".join(f"{r['gflops_median']:.1f}" for r in peaks if r["impl"] == impl)
              for impl in ("djl", "pytorch")}
    print("\nFull fine-tuning against the matrix-multiply peak (2048 x 2048 float32, 2 threads):\n")
    print("| model | step GFLOP (matmuls) | DJL GFLOP/s | share of libtorch 2.7's peak | PyTorch GFLOP/s | share of its peak |")
    print("|---|---:|---:|---:|---:|---:|")
    for model in full:
        f = [r for r in rows if r["model"] == model and r["method"] == "full"]
        d = [r for r in f if r["impl"] == "djl"]
        p = [r for r in f if r["impl"] == "pytorch"]
        gflop = med(p, "step_gflop")
        tokens = p[0]["tokens_per_second"] * p[0]["seconds"] / p[0]["steps"]  # tokens per step
        g_d = gflop * med(d, "tokens_per_second") / tokens
        g_p = gflop * med(p, "tokens_per_second") / tokens
        print(f"| {model} | {gflop:.2f} | {g_d:.1f} | {g_d / peak['djl']:.0%} | {g_p:.1f} | {g_p / peak['pytorch']:.0%} |")
    print(f"\nMatmul peak, GFLOP/s (median of 10 products, before / after the pairs): libtorch 2.7 "
          f"through DJL {spread['djl']}; PyTorch {peaks[-1].get('torch')} {spread['pytorch']}.")
PY
