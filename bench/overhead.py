"""Platform overhead on the one-machine stack: the demo job (examples/sentiment-inline.json) JOBS
times, one after the other, each published to Kafka and followed to its end. For each job, from
the registry's timeline (every event's time) and the training worker's start-up line (its log,
runs/<job>-a1/worker.log in $TUNELINE_HOME):
  - Kafka event to first training step: JobRequested to the first TrainingProgress (sent when step
    1 is done), split into ingestion, preprocessing, and the training service's part: launching
    the worker JVM, the worker's JVM start, reading the data, fetching the base model, loading
    libtorch, loading the model, the first step;
  - time outside training: the job's whole time (JobRequested to its terminal event) less the
    training loop's (first TrainingProgress to TrainingCompleted, which includes the model upload:
    an upper bound of the training, so a lower bound of what is outside);
p50 and p95 over the jobs. Needs the stack up (./platform bench overhead starts it).

    /usr/bin/python3 bench/overhead.py [JOBS]        # default 10; writes target/bench/overhead.json
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("TUNELINE_HOME", Path.home() / ".tuneline"))
REGISTRY = os.environ.get("TUNELINE_REGISTRY", "http://127.0.0.1:8080")
TOKEN = os.environ.get("TUNELINE_API_TOKEN", "tuneline-local-token")
OUT = ROOT / "target" / "bench"
STARTUP = re.compile(r"worker start-up of (\S+): jvm start (\S+); (.*)")


def when(text):
    """An ISO-8601 instant (Z or offset, up to nanoseconds) as a datetime."""
    text = text.replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    return datetime.fromisoformat(text)


def job_view(job_id):
    request = urllib.request.Request(f"{REGISTRY}/api/v1/jobs/{job_id}",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def percentile(values, p):
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def worker_marks(job_id):
    """(JVM start, {milestone: seconds after it}) from the worker's log, or None."""
    log = STATE / "runs" / f"{job_id}-a1" / "worker.log"
    if not log.exists():
        return None
    for line in log.read_text(errors="replace").splitlines():
        m = STARTUP.search(line)
        if m:
            marks = {}
            for part in m.group(3).split(", "):
                name, _, value = part.rpartition(" +")
                marks[name] = float(value.removesuffix(" s"))
            return when(m.group(2)), marks
    return None


def one(i, template, stamp):
    job = dict(template)
    job["job_id"] = f"overhead-{stamp}-{i:02d}"
    path = OUT / f"overhead-{i:02d}.json"
    path.write_text(json.dumps(job))
    subprocess.run([str(ROOT / "platform"), "publish", str(path), "--watch"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    view = job_view(job["job_id"])
    if view.get("status") != "SUCCEEDED":
        raise SystemExit(f"job {job['job_id']} ended {view.get('status')}: {view.get('status_message')}")
    timeline = view["timeline"]
    at = lambda e: when(e["occurred_at"])
    first = lambda t: next(e for e in timeline if e["type"] == t)
    requested = at(first("JobRequested"))
    ingested = at(first("DatasetIngested"))
    prepared = at(first("DatasetPrepared"))
    step = at(first("TrainingProgress"))
    trained = at(first("TrainingCompleted"))
    end = max(at(e) for e in timeline if e.get("terminal")) if any(
        e.get("terminal") for e in timeline) else at(timeline[-1])
    total = (end - requested).total_seconds()
    training = (trained - step).total_seconds()
    row = {
        "job": job["job_id"],
        "first_step": (step - requested).total_seconds(),
        "ingestion": (ingested - requested).total_seconds(),
        "preprocessing": (prepared - ingested).total_seconds(),
        "training service to first step": (step - prepared).total_seconds(),
        "total": total,
        "outside": total - training,
    }
    marks = worker_marks(job["job_id"])
    if marks:
        jvm, m = marks
        row["launch (event to worker JVM start)"] = (jvm - prepared).total_seconds()
        previous = 0.0
        for name in ("main", "data read", "base model fetched", "libtorch loaded", "model loaded",
                     "first step"):
            if name in m:
                label = "worker JVM start" if name == "main" else f"worker: {name}"
                row[label] = m[name] - previous
                previous = m[name]
        row["first step to its progress event"] = (step - (jvm + timedelta(seconds=previous))).total_seconds()
    return row


def main():
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    OUT.mkdir(parents=True, exist_ok=True)
    template = json.load(open(ROOT / "examples" / "sentiment-inline.json"))
    stamp = time.strftime("%H%M%S")
    rows = []
    for i in range(jobs):
        rows.append(one(i, template, stamp))
        print(f"job {i + 1}/{jobs}: first step {rows[-1]['first_step']:.1f} s after the event, "
              f"{rows[-1]['total']:.1f} s in all", flush=True)
    keys = [k for k in rows[0] if k != "job"]
    print(f"\n| {jobs} demo jobs, one at a time | p50 s | p95 s | max s |")
    print("|---|---:|---:|---:|")
    for k in keys:
        values = [r[k] for r in rows if k in r]
        label = {"first_step": "**Kafka event to first training step**", "total": "whole job",
                 "outside": "**time outside training**"}.get(k, k)
        print(f"| {label} | {percentile(values, 50):.2f} | {percentile(values, 95):.2f} "
              f"| {max(values):.2f} |")
    summary = {
        "jobs": jobs,
        "first_step_p50": percentile([r["first_step"] for r in rows], 50),
        "first_step_p95": percentile([r["first_step"] for r in rows], 95),
        "outside_p50": percentile([r["outside"] for r in rows], 50),
        "outside_p95": percentile([r["outside"] for r in rows], 95),
        "outside_share_p50": percentile([r["outside"] / r["total"] for r in rows], 50),
        "rows": rows,
    }
    json.dump(summary, open(OUT / "overhead.json", "w"), indent=1)
    print(f"\nThe time outside training is {summary['outside_share_p50']:.0%} of the whole job at p50 "
          "(the training loop counted from the first progress event to TrainingCompleted).")


if __name__ == "__main__":
    main()
