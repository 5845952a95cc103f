"""The PyTorch peer's matrix-multiply peak: a large square float32 matmul on 2 threads, measured as
the engine's side measures its own (io.tuneline.engine.bench.MatmulPeak), the yardstick of the
full fine-tuning step's achieved GFLOP/s in bench/training-throughput.sh. Prints one JSON line:
the median and best GFLOP/s of REPS products of two N x N matrices after two untimed ones.

    python3 bench/matmul_peak.py [N] [REPS] [M K]   # defaults 2048 and 10; M x K by K x N when given
"""
import json
import statistics
import sys
import time

import torch


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    m = int(sys.argv[3]) if len(sys.argv) > 4 else n
    k = int(sys.argv[4]) if len(sys.argv) > 4 else n
    torch.set_num_threads(2)
    torch.manual_seed(0)
    a, b = torch.randn(m, k), torch.randn(k, n)
    gflops = []
    for i in range(-2, reps):
        start = time.perf_counter()
        torch.mm(a, b)
        seconds = time.perf_counter() - start
        if i >= 0:
            gflops.append(2.0 * m * k * n / seconds / 1e9)
    print(json.dumps({"impl": "pytorch", "model": "matmul", "method": "peak", "m": m, "k": k, "n": n,
                      "reps": reps,
                      "gflops_median": round(statistics.median(gflops), 1),
                      "gflops_best": round(max(gflops), 1), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
