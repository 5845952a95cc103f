"""Load test of the serving service: closed-loop clients at several concurrencies.

Each of C clients sends its next request as soon as the previous one is answered, until REQUESTS
requests have been answered at that concurrency. A classifier is asked through
/v1/models/{model}/classify (INPUTS texts per request, drawn in turn from the texts given); a
causal LM through /v1/completions (greedy, MAX_TOKENS tokens). Reports, per concurrency:
throughput, latency p50/p95/p99, the error rate, and the server's own view from /q/metrics (mean
engine batch size, generated tokens/s). Python standard library only.

    python3 bench/serving_load.py URL MODEL TEXTS.jsonl [--task classify|completions]
        [--requests N] [--concurrency 1,4,16] [--inputs 1] [--max-tokens 16] [--json OUT]
"""

import argparse
import concurrent.futures
import json
import re
import statistics
import threading
import time
import urllib.error
import urllib.request


def post(url, body, timeout=120):
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
            return time.perf_counter() - started, response.status, payload
    except urllib.error.HTTPError as e:
        return time.perf_counter() - started, e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        return time.perf_counter() - started, 0, str(e)


def metric_sum(url, series, model):
    """The sum over the series' samples for the model (0 when absent)."""
    text = urllib.request.urlopen(url + "/q/metrics", timeout=30).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(series) and f'model="{model}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def run(args, texts, concurrency):
    name = args.model.split(":")[0]
    lock = threading.Lock()
    issued = [0]
    latencies, errors, tokens = [], [], [0]

    def body(i):
        if args.task == "classify":
            return {"inputs": [texts[(i * args.inputs + k) % len(texts)] for k in range(args.inputs)]}
        return {"model": args.model, "prompt": texts[i % len(texts)], "max_tokens": args.max_tokens,
                "temperature": 0}

    endpoint = (f"{args.url}/v1/models/{args.model}/classify" if args.task == "classify"
                else f"{args.url}/v1/completions")

    def client():
        while True:
            with lock:
                if issued[0] >= args.requests:
                    return
                i = issued[0]
                issued[0] += 1
            seconds, status, payload = post(endpoint, body(i))
            with lock:
                if status == 200:
                    latencies.append(seconds)
                    if args.task == "completions":
                        tokens[0] += payload.get("usage", {}).get("completion_tokens", 0)
                else:
                    errors.append(f"{status}: {str(payload)[:200]}")

    batches_before = (metric_sum(args.url, "tuneline_serving_batch_inputs_count", name),
                      metric_sum(args.url, "tuneline_serving_batch_inputs_sum", name))
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(client) for _ in range(concurrency)]:
            f.result()
    wall = time.perf_counter() - started
    batches_after = (metric_sum(args.url, "tuneline_serving_batch_inputs_count", name),
                     metric_sum(args.url, "tuneline_serving_batch_inputs_sum", name))
    batch_count = batches_after[0] - batches_before[0]
    result = {
        "concurrency": concurrency, "requests": args.requests, "errors": len(errors),
        "error_rate": len(errors) / args.requests, "wall_s": wall,
        "requests_per_s": len(latencies) / wall,
        "p50_ms": 1000 * percentile(latencies, 50) if latencies else None,
        "p95_ms": 1000 * percentile(latencies, 95) if latencies else None,
        "p99_ms": 1000 * percentile(latencies, 99) if latencies else None,
        "mean_ms": 1000 * statistics.fmean(latencies) if latencies else None,
        "first_errors": errors[:3],
    }
    # Texts per classify batch, or generations per decoding batch.
    result["mean_engine_batch"] = ((batches_after[1] - batches_before[1]) / batch_count
                                   if batch_count else None)
    if args.task == "classify":
        result["inputs_per_s"] = len(latencies) * args.inputs / wall
    else:
        result["generated_tokens_per_s"] = tokens[0] / wall
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("model")
    parser.add_argument("texts", help="a JSONL file whose records have 'text' (or 'prompt')")
    parser.add_argument("--task", default="classify", choices=["classify", "completions"])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--inputs", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--json")
    args = parser.parse_args()
    args.url = args.url.rstrip("/")
    texts = []
    for line in open(args.texts):
        if line.strip():
            record = json.loads(line)
            texts.append(record.get("text") or record.get("prompt"))
    if not texts:
        raise SystemExit(f"no 'text' or 'prompt' in {args.texts}")
    # Warm-up: the first request loads the version.
    seconds, status, payload = post(
        f"{args.url}/v1/models/{args.model}/classify" if args.task == "classify"
        else f"{args.url}/v1/completions",
        {"inputs": texts[:1]} if args.task == "classify"
        else {"model": args.model, "prompt": texts[0], "max_tokens": 1}, timeout=600)
    if status != 200:
        raise SystemExit(f"the warm-up request failed with {status}: {payload}")
    results = [run(args, texts, int(c)) for c in args.concurrency.split(",")]
    unit = "inputs/s" if args.task == "classify" else "tokens/s"
    print(f"| clients | requests | errors | requests/s | {unit} | p50 ms | p95 ms | p99 ms |"
          " mean engine batch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rate = r["inputs_per_s"] if args.task == "classify" else r["generated_tokens_per_s"]
        batch = r.get("mean_engine_batch")
        print(f"| {r['concurrency']} | {r['requests']} | {r['errors']} | {r['requests_per_s']:.1f} | "
              f"{rate:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} |"
              + (f" {batch:.2f} |" if batch else " - |"))
        for e in r["first_errors"]:
            print(f"    error: {e}")
    if args.json:
        json.dump(results, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
