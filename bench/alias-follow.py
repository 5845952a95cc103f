"""How soon serving follows an alias moved in the registry: moves the alias `live` of MODEL between
two versions over the registry's API and, after each move, asks serving for MODEL:live until the
version it moved to answers. Prints, per move, the milliseconds the PUT took and the milliseconds
from sending the PUT to the first answer by the new version. A move to a version serving holds
already measures the announcement (ModelChanged) alone; a move to an unloaded one adds its load.

    ./platform demo; ./platform serve sentiment-demo; ./platform demo     # versions 1 and 2
    python3 bench/alias-follow.py [MODEL] [VERSION_A] [VERSION_B] [MOVES]  # sentiment-demo 1 2 6

Standard library only; the one-machine stack's addresses and token.
"""
import json
import sys
import time
import urllib.request

REGISTRY, SERVING, TOKEN = "http://127.0.0.1:8080", "http://127.0.0.1:8085", "tuneline-local-token"


def call(method, url, body, token=False):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + TOKEN
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else "sentiment-demo"
    a, b = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (1, 2)
    moves = int(sys.argv[4]) if len(sys.argv) > 4 else 6
    alias = f"{REGISTRY}/api/v1/models/{model}/aliases/live"
    served = f"{SERVING}/v1/models/{model}:live/classify"
    call("PUT", alias, {"version": a}, token=True)
    while call("POST", served, {"inputs": ["fine"]})["model"] != f"{model}:{a}":
        pass
    print("| move | PUT ms | served by the new version after ms |")
    print("|---|---:|---:|")
    for i in range(moves):
        target = b if i % 2 == 0 else a
        start = time.perf_counter()
        call("PUT", alias, {"version": target}, token=True)
        put = time.perf_counter() - start
        while call("POST", served, {"inputs": ["fine"]})["model"] != f"{model}:{target}":
            pass
        print(f"| live -> {target} | {put * 1000:.0f} | {(time.perf_counter() - start) * 1000:.0f} |")


if __name__ == "__main__":
    main()
