"""./platform bench [NAME...]: runs the named benchmarks through their own scripts in bench/, prints
what each printed and a summary of ratios against the peer measured in the same run, and rewrites
the generated blocks of docs/benchmarks.md (between <!-- bench:begin NAME --> and
<!-- bench:end NAME --> markers; the prose around them stays).

Names (default: training data startup, about 15 minutes on 2 cores):
  training   the engine vs plain PyTorch on MiniLM, a small GPT-2 and a small Llama-layout model, full,
             freeze and LoRA (bench/training-throughput.sh; TRAINING_MODELS narrows it)
  data       preprocessing vs the tokenizer alone (bench/preprocessing-throughput.sh) and ingestion
             vs a raw read of the same object (bench/ingestion-throughput.sh)
  startup    each service's start-up time and memory, one at a time (./platform startup-times)
  overhead   10 demo jobs one after the other: Kafka event to first training step, time outside
             training, the worker's start broken down (bench/overhead.py)
  scale      N small jobs at once with 1, 2 and 4 training slots (bench/load.sh)
  serving    the serving service under closed-loop load (bench/serving-load.sh)
The ones that need the one-machine stack start it when it is not running and stop it again after;
scale needs it stopped (its end-to-end test starts a stack of its own on the same ports).
Settings of the scripts pass through the environment (e.g. TRAINING_MODELS="minilm gpt2",
LOAD_JOBS=30, REQUESTS=100). Python standard library only.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
OUT = ROOT / "target" / "bench"
DEFAULT = ["training", "data", "startup"]
ALL = ["training", "data", "startup", "overhead", "scale", "serving"]
NEEDS_STACK = {"startup", "overhead", "serving"}
# The end-to-end load test starts its own stack (its own state directory) on the same ports.
NEEDS_NO_STACK = {"scale"}


def sh(cmd):
    """A command's output, or '?' when it cannot run."""
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60,
                              cwd=ROOT).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine():
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem = sh("awk '/MemTotal/ {printf \"%.1f\", $2 / 1048576}' /proc/meminfo")
    java = sh("java -version 2>&1 | head -1")
    pom = (ROOT / "pom.xml").read_text()
    djl = re.search(r"<djl.version>([^<]+)", pom)
    libtorch = re.search(r"<libtorch.version>([^<]+)", pom)
    torch = sh("/usr/bin/python3 -c 'import torch; print(torch.__version__)' 2>/dev/null")
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "java": java,
        "djl": djl.group(1) if djl else "?", "libtorch": libtorch.group(1) if libtorch else "?",
        "pytorch": torch if torch != "?" else "not installed",
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
    }


def load():
    return " / ".join(open("/proc/loadavg").read().split()[:3])


def stack_running():
    out = sh(f"{ROOT}/platform status")
    return all(re.search(rf"^{c}\s+\d+", out, re.M) for c in ("kafka", "s3", "registry"))


def run(name, command, env=None):
    """Runs one script, its output shown as it comes and kept; returns (output, seconds)."""
    print(f"\n== {name}: {command}", flush=True)
    started = time.monotonic()
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.Popen(command, shell=True, cwd=ROOT, env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    rc = proc.wait()
    took = time.monotonic() - started
    if rc != 0:
        raise RuntimeError(f"{name}: `{command}` failed with exit status {rc}; its output is above")
    return "".join(lines), took


def tables(text):
    """What a script printed, less build and logging noise (its scripts build with mvnw -q)."""
    noise = ("[", "SLF4J", "WARNING", "Downloading", "Downloaded", "Progress", "\x1b")
    keep = [line.rstrip() for line in text.splitlines() if not line.startswith(noise)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(keep)).strip()


# ---------------------------------------------------------------------------- the benchmarks
# Each returns (what to show, the summary rows: (benchmark, result, peer, ratio)).

def bench_training():
    models = os.environ.get("TRAINING_MODELS", "minilm gpt2 llama")
    steps = os.environ.get("TRAINING_STEPS", "10")
    pairs = os.environ.get("TRAINING_PAIRS", "3")
    command = f'MODELS="{models}" GPT2_STEPS=3 bench/training-throughput.sh {steps} {pairs}'
    text, took = run("training", command)
    rows = [json.loads(line) for line in
            open(ROOT / "services/engine/target/bench/results.jsonl") if line.strip()]
    peaks = [r for r in rows if r["model"] == "matmul"]
    rows = [r for r in rows if r["model"] != "matmul"]
    summary = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows if r["model"] == model):
            d = [r for r in rows if (r["model"], r["method"], r["impl"]) == (model, method, "djl")]
            p = [r for r in rows if (r["model"], r["method"], r["impl"]) == (model, method, "pytorch")]
            if not d or not p:
                continue
            ratios = [a["tokens_per_second"] / b["tokens_per_second"] for a, b in zip(d, p)]
            memory = statistics.median(r["peak_rss_mb"] for r in d) / statistics.median(
                r["peak_rss_mb"] for r in p)
            summary.append((f"training {model} {method}: tokens/s",
                            f"{statistics.median(r['tokens_per_second'] for r in d):.0f} tokens/s",
                            "plain PyTorch, same model and method", f"{statistics.median(ratios):.2f}"))
            summary.append((f"training {model} {method}: peak RSS",
                            f"{statistics.median(r['peak_rss_mb'] for r in d):.0f} MiB",
                            "plain PyTorch's peak RSS", f"{memory:.2f}"))
            if method == "full" and peaks and "step_gflop" in p[0]:
                # The step's matmul FLOPs (counted on the PyTorch side) at the engine's speed,
                # against the matmul peak of the engine's libtorch measured in the same run.
                tokens = p[0]["tokens_per_second"] * p[0]["seconds"] / p[0]["steps"]
                gflops = statistics.median(r["step_gflop"] for r in p) * statistics.median(
                    r["tokens_per_second"] for r in d) / tokens
                peak = statistics.median(r["gflops_median"] for r in peaks if r["impl"] == "djl")
                summary.append((f"training {model} full: achieved GFLOP/s", f"{gflops:.1f} GFLOP/s",
                                f"matmul peak through libtorch ({peak:.0f} GFLOP/s)",
                                f"{gflops / peak:.2f}"))
    return command, tables(text), took, summary


def bench_data():
    pre_mb = os.environ.get("PREPROCESSING_MB", "64")
    ing_mb = os.environ.get("INGESTION_MB", "128")
    c1 = f"bench/preprocessing-throughput.sh {pre_mb} 512m"
    c2 = f"bench/ingestion-throughput.sh {ing_mb} 3"
    t1, took1 = run("data (preprocessing)", c1)
    t2, took2 = run("data (ingestion)", c2)
    pre = json.load(open(ROOT / "services/preprocessing/target/bench/result.json"))
    ing = json.load(open(ROOT / "services/ingestion/target/bench/result.json"))
    summary = [
        (f"preprocessing, {pre_mb} MiB JSONL", f"{pre['mb_per_second']} MB/s",
         "MiniLM's tokenizer alone on every core, same records", f"{pre['ratio_to_tokenizer']:.2f}"),
        (f"ingestion, {ing_mb} MiB JSONL from the store", f"{ing['ingestion_mb_per_second']} MB/s",
         "raw read of the same object, same store", f"{ing['ratio_median']:.2f}"),
    ]
    text = f"Preprocessing (`{c1}`):\n\n{tables(t1)}\n\nIngestion (`{c2}`):\n\n{tables(t2)}"
    return f"{c1}; {c2}", text, took1 + took2, summary


def bench_startup():
    command = "./platform startup-times"
    text, took = run("startup", command)
    rows = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    bare = next(r for r in rows if r["rss_mb"] is None)
    lines = ["| service | ready after s | Quarkus's \"started in\" s | RSS when ready MiB | x bare JVM start |",
             "|---|---:|---:|---:|---:|",
             f"| {bare['name']} | {bare['seconds']:.2f} | - | - | 1 |"]
    summary = []
    for r in rows:
        if r is bare:
            continue
        q = "-" if r["quarkus_seconds"] is None else f"{r['quarkus_seconds']:.2f}"
        lines.append(f"| {r['name']} | {r['seconds']:.2f} | {q} | {r['rss_mb']} "
                     f"| {r['seconds'] / bare['seconds']:.1f} |")
        summary.append((f"start-up of {r['name']}", f"{r['seconds']:.1f} s, {r['rss_mb']} MiB",
                        "a bare JVM start (java -version)", f"{r['seconds'] / bare['seconds']:.1f}"))
    return command, "\n".join(lines), took, summary


def bench_overhead():
    jobs = os.environ.get("OVERHEAD_JOBS", "10")
    command = f"/usr/bin/python3 bench/overhead.py {jobs}"
    text, took = run("overhead", command)
    r = json.load(open(ROOT / "target/bench/overhead.json"))
    summary = [("Kafka event to first training step, p50", f"{r['first_step_p50']:.1f} s",
                "the 5 s goal", f"{r['first_step_p50'] / 5:.2f}"),
               ("time outside training per demo job, p50", f"{r['outside_p50']:.1f} s",
                "the job's whole time", f"{r['outside_share_p50']:.2f}")]
    return command, tables(text), took, summary


def bench_scale():
    jobs = os.environ.get("LOAD_JOBS", "30")
    command = f"SLOTS='1 2 4' bench/load.sh {jobs}"
    text, took = run("scale", command)
    summary = []
    for m in re.finditer(r"speed-up of (\d) training runs at once over 1: ([0-9.]+)x \(([^)]*)\)", text):
        summary.append((f"{jobs} small jobs with {m.group(1)} training slots", m.group(3),
                        "the same jobs with 1 slot", m.group(2)))
    return command, tables(text), took, summary


def bench_serving():
    requests = os.environ.get("REQUESTS", "100")
    command = f"REQUESTS={requests} bench/serving-load.sh"
    text, took = run("serving", command)
    rows = json.load(open(ROOT / "target/serving-load/classify.json"))
    one = rows[0]
    summary = [(f"classify, {r['concurrency']} clients", f"{r['requests_per_s']:.1f} requests/s, "
                f"p95 {r['p95_ms']:.0f} ms", "the same service with 1 client",
                f"{r['requests_per_s'] / one['requests_per_s']:.2f}") for r in rows[1:]]
    return command, tables(text), took, summary


BENCHES = {"training": bench_training, "data": bench_data, "startup": bench_startup,
           "overhead": bench_overhead, "scale": bench_scale, "serving": bench_serving}


# ---------------------------------------------------------------------------- docs/benchmarks.md

def block(name, body):
    return f"<!-- bench:begin {name} -->\n{body.strip()}\n<!-- bench:end {name} -->"


def replace_block(doc, name, body):
    pattern = re.compile(rf"<!-- bench:begin {re.escape(name)} -->.*?<!-- bench:end {re.escape(name)} -->",
                         re.S)
    if pattern.search(doc):
        return pattern.sub(lambda _: block(name, body), doc)
    # A name seen for the first time goes after the last generated block.
    last = list(re.finditer(r"<!-- bench:end [a-z]+ -->", doc))
    if not last:
        raise SystemExit(f"{DOC} has no <!-- bench:begin summary --> ... <!-- bench:end summary --> "
                         "markers; add them where the generated tables should go")
    at = last[-1].end()
    return doc[:at] + "\n\n" + block(name, body) + doc[at:]


def machine_line(m):
    """The machine and versions a result was measured on: each block says its own, since the summary
    keeps rows of earlier runs, which may have run elsewhere."""
    return (f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {m['os']}; {m['java']}; "
            f"DJL {m['djl']} + libtorch {m['libtorch']}; PyTorch {m['pytorch']} (peer)")


SUMMARY_HEAD = ["| benchmark | result | peer, measured in the same run | ratio to the peer | run |",
                "|---|---|---|---:|---|"]


def merged_summary(doc, fresh, run_date):
    """The summary table: this run's rows, then earlier rows of benchmarks not run this time."""
    m = re.search(r"<!-- bench:begin summary -->(.*?)<!-- bench:end summary -->", doc, re.S)
    old = [line for line in (m.group(1).splitlines() if m else [])
           if line.startswith("| ") and not line.startswith(("| benchmark", "|---"))]
    rerun = {name for name, _ in fresh}
    rows = [f"| {b} | {res} | {peer} | {ratio} | [{name}, {run_date}](#bench-{name}) |"
            for name, summary in fresh for b, res, peer, ratio in summary]
    rows += [line for line in old
             if not any(f"[{name}," in line for name in rerun)]
    return "\n".join(SUMMARY_HEAD + rows)


def main(argv):
    names = argv or DEFAULT
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"platform bench: unknown benchmark {', '.join(unknown)}; "
                         f"names: {' '.join(ALL)} (default: {' '.join(DEFAULT)})")
    OUT.mkdir(parents=True, exist_ok=True)
    m = machine()
    started_stack = False
    run_started = time.monotonic()
    run_date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    fresh, sections, failed = [], {}, []
    try:
        for name in names:
            try:
                # A stack that cannot start (or stop) fails this benchmark, not the run: the
                # results already measured still go to the file.
                if name in NEEDS_STACK and not stack_running():
                    started_stack = True  # ./platform down also stops what a failed start left
                    run("stack", "./platform up > /dev/null")
                if name in NEEDS_NO_STACK and stack_running():
                    if not started_stack:
                        raise RuntimeError("the end-to-end test starts its own stack on the same "
                                           "ports; ./platform down first")
                    run("stack", "./platform down > /dev/null")
                    started_stack = False
                before = load()
                command, text, took, summary = BENCHES[name]()
            except (RuntimeError, OSError, ValueError, KeyError, StopIteration) as e:
                # The others' results still go to the file; this one's block stays as it was.
                failed.append(f"{name}: {e}")
                print(f"\n== {name} FAILED: {e}", flush=True)
                continue
            fresh.append((name, summary))
            sections[name] = (
                f'<a id="bench-{name}"></a>\n#### `{name}`, {run_date}\n\n'
                f"```bash\n{command}\n```\n\n{text}\n\n"
                f"Took {took / 60:.1f} min; load average (1 / 5 / 15 min) {before} before, "
                f"{load()} after. Machine: {machine_line(m)}.")
    finally:
        if started_stack:
            run("stack", "./platform down > /dev/null")
    total = time.monotonic() - run_started

    line = machine_line(m)
    if not fresh:
        # A run with no result leaves the file as it was: its summary line would otherwise claim a
        # run that measured nothing above the earlier runs' rows.
        raise SystemExit("platform bench: failed, docs/benchmarks.md left as it was: "
                         + "; ".join(failed))
    doc = DOC.read_text()
    summary = merged_summary(doc, fresh, run_date)
    doc = replace_block(doc, "summary",
                        f"Last run: `./platform bench {' '.join(names)}`, {run_date}, "
                        f"{total / 60:.1f} min in all. Machine: {line}.\n\n{summary}")
    for name in sections:
        doc = replace_block(doc, name, sections[name])
    DOC.write_text(doc)

    print(f"\n== summary ({total / 60:.1f} min; {line})\n")
    print("\n".join(SUMMARY_HEAD))
    for name, rows in fresh:
        for b, res, peer, ratio in rows:
            print(f"| {b} | {res} | {peer} | {ratio} | {name} |")
    print(f"\n{DOC.relative_to(ROOT)} updated (between its bench:begin/bench:end markers).")
    if failed:
        raise SystemExit("platform bench: failed: " + "; ".join(failed))


if __name__ == "__main__":
    main(sys.argv[1:])
