"""The twin of the engine's io.tuneline.engine.bench.ForwardOps: the time of each operation of one
MiniLM encoder layer at the training benchmark's shapes (8 x 32 tokens, hidden 384, 12 heads,
intermediate 1536), in training mode (dropout 0.1) with gradient recording on, as the PyTorch peer
(bench/torch_minilm_train.py) calls them. Prints one JSON line: the first decile of each operation's
microseconds over REPS calls after 30 untimed ones (as ForwardOps: robust to a shared machine), and the whole layer beside the sum of its parts.

    python3 bench/forward_ops.py [REPS] [THREADS]     # defaults 300 and 2
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

B, T, H, HEADS, I, DROP = 8, 32, 384, 12, 1536, 0.1
D = H // HEADS


def timed(reps, op):
    took = []
    for i in range(-30, reps):
        start = time.perf_counter()
        op()
        seconds = time.perf_counter() - start
        if i >= 0:
            took.append(seconds * 1e6)
    return sorted(took)[len(took) // 10]


def weight(name):
    """How often one layer calls the operation timed under `name` (as ForwardOps.weight)."""
    if name.startswith(("embeddings", "libtorch's")):
        return 0
    if name.startswith(("LayerNorm", "dropout (hidden", "residual")):
        return 2
    if name.startswith("linear 384->384"):
        return 4
    if name.startswith("split heads"):
        return 3
    return 1


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    torch.manual_seed(1)

    def leaf(t):
        return t.requires_grad_(True)

    ids = torch.randint(0, 30522, (B, T))
    words, positions, token_type = leaf(torch.randn(30522, H)), leaf(torch.randn(512, H)), leaf(torch.randn(2, H))
    x = leaf(torch.randn(B, T, H))
    wq, bq = leaf(torch.randn(H, H) * 0.05), leaf(torch.zeros(H))
    wi, bi = leaf(torch.randn(I, H) * 0.05), leaf(torch.zeros(I))
    wo = leaf(torch.randn(H, I) * 0.05)
    gamma, beta = leaf(torch.ones(H)), leaf(torch.zeros(H))
    heads, heads_t = leaf(torch.randn(B, HEADS, T, D)), leaf(torch.randn(B, HEADS, D, T))
    scores = leaf(torch.randn(B, HEADS, T, T))
    inter = leaf(torch.randn(B, T, I))
    mask = torch.ones(B, T)
    bias = (1.0 - mask[:, None, None, :].float()) * -1e4
    pos = torch.arange(T)
    ops = {
        "embeddings (gather + 2 adds)": lambda: words[ids] + positions[pos] + token_type[0],
        "LayerNorm (384)": lambda: F.layer_norm(x, (H,), gamma, beta, 1e-12),
        "linear 384->384 (each of Q, K, V, out)": lambda: F.linear(x, wq, bq),
        "split heads (reshape + transpose)": lambda: x.view(B, T, HEADS, D).transpose(1, 2),
        "scores q @ k^T": lambda: heads @ heads_t,
        "scale (* 1/sqrt(d))": lambda: scores / math.sqrt(D),
        "mask add": lambda: scores + bias,
        "softmax": lambda: torch.softmax(scores, dim=-1),
        "dropout (probs, 8x12x32x32)": lambda: F.dropout(scores, DROP, True),
        "context probs @ v": lambda: scores @ heads,
        "merge heads (transpose + reshape copy)": lambda: heads.transpose(1, 2).reshape(B, T, H),
        "dropout (hidden, 256x384)": lambda: F.dropout(x, DROP, True),
        "libtorch's dropout (bernoulli_ mask; not in the sum)": lambda: F.dropout(x, DROP, True),
        "residual add": lambda: x + x,
        "linear 384->1536": lambda: F.linear(x, wi, bi),
        "GELU (256x1536)": lambda: F.gelu(inter),
        "linear 1536->384": lambda: F.linear(inter, wo, bq),
    }
    out = {"impl": "pytorch", "reps": reps, "torch": torch.__version__}
    for name, op in ops.items():
        out[name] = round(timed(reps, op), 1)

    w = {n: leaf(torch.randn(s) * 0.05) for n, s in
         [("q", (H, H)), ("k", (H, H)), ("v", (H, H)), ("o", (H, H)), ("i", (I, H)), ("f", (H, I))]}
    b = {n: leaf(torch.zeros(w[n].shape[0])) for n in w}
    g1, b1, g2, b2 = leaf(torch.ones(H)), leaf(torch.zeros(H)), leaf(torch.ones(H)), leaf(torch.zeros(H))

    def layer():
        # bench/torch_minilm_train.py's layer, verbatim but for the parameter lookup.
        def split(t):
            return t.view(t.shape[0], t.shape[1], HEADS, D).transpose(1, 2)
        q, k, v = (split(F.linear(x, w[n], b[n])) for n in "qkv")
        att = F.dropout(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D) + bias, dim=-1), DROP, True)
        ctx = (att @ v).transpose(1, 2).reshape(x.shape)
        a = F.dropout(F.linear(ctx, w["o"], b["o"]), DROP, True)
        y = F.layer_norm(x + a, (H,), g1, b1, 1e-12)
        h = F.gelu(F.linear(y, w["i"], b["i"]))
        o = F.dropout(F.linear(h, w["f"], b["f"]), DROP, True)
        return F.layer_norm(y + o, (H,), g2, b2, 1e-12)

    out["whole BertLayer.forward"] = round(timed(reps, layer), 1)
    out["sum of the ops, as a layer calls them"] = round(
        sum(weight(n) * v for n, v in out.items() if isinstance(v, float) and not n.startswith("whole")), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
