"""Sums a libtorch profiler trace by op: where a training step's native time goes, op by op.

The engine side writes the trace with `TrainingThroughput MODEL METHOD STEPS DIR` run under
`-DopTrace=FILE` (libtorch's profiler over the timed run, with input shapes; see
services/engine/.../bench/TrainingThroughput.java). Times are each op's own (self) time: its
duration less that of the ops it called. The profiler slows every op, so compare counts and shares
within one trace, not milliseconds across runs.

    python3 bench/op_trace.py FILE STEPS [TOP] [--shapes]   # STEPS: the steps the trace holds
"""
import collections
import json
import sys


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    path, steps = args[0], int(args[1])
    top = int(args[2]) if len(args) > 2 else 30
    by_shape = "--shapes" in sys.argv
    events = json.load(open(path))
    events = events["traceEvents"] if isinstance(events, dict) else events
    per_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            per_thread[e.get("tid")].append(e)
    own = collections.defaultdict(float)
    count = collections.Counter()
    for spans in per_thread.values():
        spans.sort(key=lambda e: (e["ts"], -e["dur"]))
        open_spans = []
        for e in spans:
            while open_spans and open_spans[-1]["ts"] + open_spans[-1]["dur"] <= e["ts"]:
                open_spans.pop()
            key = (e["name"], str(e.get("shape"))) if by_shape else (e["name"], "")
            if open_spans:
                parent = open_spans[-1]
                own[(parent["name"], str(parent.get("shape"))) if by_shape else (parent["name"], "")] -= e["dur"]
            own[key] += e["dur"]
            count[key] += 1
            open_spans.append(e)
    total = sum(own.values())
    for (name, shape), us in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{name:40s} {us / steps / 1000:8.2f} ms {100 * us / total:5.1f}% {count[(name, shape)] / steps:6.1f}/step {shape[:90]}")
    print(f"total own time per step: {total / steps / 1000:.1f} ms")


if __name__ == "__main__":
    main()
