"""The peer of the engine's TrainingThroughput: the same MiniLM classifier (same weights, read from
the safetensors file the Java side exported), the same method, batch and sequence length, trained
with torch.optim.AdamW in plain PyTorch. Dropout as Hugging Face's BertModel runs it in training
(hidden_dropout_prob and attention_probs_dropout_prob 0.1: on the embeddings, the attention
probabilities and each sublayer's output before its residual), as the engine's BertEncoder does
with MiniLM's configuration; the head's 0.1 on the pooled vector. Prints one JSON line.

usage: python3 torch_minilm_train.py METHOD STEPS BASE_SAFETENSORS [profile]

With "profile" the line also splits the timed steps into phases (time.perf_counter around each)
and counts, in one more step under torch's autograd profiler, the native operations each phase
calls (outermost aten ops, the counterpart of the engine's JNI calls; in backward, those the
autograd engine calls).
"""
import contextlib
import json
import math
import os
import resource
import struct
import sys
import time

import torch
import torch.nn.functional as F

BATCH, SEQ, WARMUP = 8, 32, 3
HIDDEN, LAYERS, HEADS, EPS = 384, 6, 12, 1e-12
DROP = 0.1  # MiniLM's hidden_dropout_prob and attention_probs_dropout_prob


def read_safetensors(path):
    """The file's float32 tensors by name, as views of one buffer: no copy, so loading a large model
    does not raise the peak memory the benchmark reports."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = bytearray(os.fstat(f.fileno()).st_size - 8 - n)
        f.readinto(data)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {info['dtype']}, only F32 is read")
        a, b = info["data_offsets"]
        out[name] = torch.frombuffer(data, dtype=torch.float32, count=(b - a) // 4, offset=a).reshape(info["shape"])
    return out


class Lora(torch.nn.Module):
    """W x + (alpha / r) B A x, as the engine's Dense.enableLora (PEFT's LoRA). With
    fan_in_fan_out, W is a Conv1D weight (in, out) used as x W + b (GPT-2); A stays (r, in) and
    B (out, r) either way, as PEFT keeps them."""

    def __init__(self, weight, bias, r=8, alpha=16.0, dropout=0.05, fan_in_fan_out=False):
        super().__init__()
        self.weight, self.bias, self.fan_in_fan_out = weight, bias, fan_in_fan_out
        fan_in, fan_out = weight.shape if fan_in_fan_out else reversed(weight.shape)
        self.a = torch.nn.Parameter(torch.empty(r, fan_in))
        torch.nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))
        self.b = torch.nn.Parameter(torch.zeros(fan_out, r))
        self.scale, self.dropout = alpha / r, dropout

    def forward(self, x):
        lora = F.linear(F.linear(F.dropout(x, self.dropout, self.training), self.a), self.b)
        if self.fan_in_fan_out:
            return torch.addmm(self.bias, x, self.weight) + self.scale * lora
        return F.linear(x, self.weight, self.bias) + self.scale * lora


class MiniLm(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.p = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v.clone()) for k, v in w.items()})
        self.lora = torch.nn.ModuleDict()

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def linear(self, x, name):
        key = name.replace(".", "__")
        if key in self.lora:
            return self.lora[key](x)
        return F.linear(x, self.w(name + ".weight"), self.w(name + ".bias"))

    def norm(self, x, name):
        return F.layer_norm(x, (HIDDEN,), self.w(name + ".weight"), self.w(name + ".bias"), EPS)

    def forward(self, ids, mask):
        pos = torch.arange(ids.shape[1])
        x = (self.w("embeddings.word_embeddings.weight")[ids]
             + self.w("embeddings.position_embeddings.weight")[pos]
             + self.w("embeddings.token_type_embeddings.weight")[0])
        x = F.dropout(self.norm(x, "embeddings.LayerNorm"), DROP, self.training)
        bias = (1.0 - mask[:, None, None, :].float()) * -1e4
        d = HIDDEN // HEADS
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            def heads(t):
                return t.view(t.shape[0], t.shape[1], HEADS, d).transpose(1, 2)
            q = heads(self.linear(x, p + "attention.self.query"))
            k = heads(self.linear(x, p + "attention.self.key"))
            v = heads(self.linear(x, p + "attention.self.value"))
            att = F.dropout(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1), DROP, self.training)
            ctx = (att @ v).transpose(1, 2).reshape(x.shape)
            a = F.dropout(self.linear(ctx, p + "attention.output.dense"), DROP, self.training)
            x = self.norm(x + a, p + "attention.output.LayerNorm")
            h = F.gelu(self.linear(x, p + "intermediate.dense"))
            o = F.dropout(self.linear(h, p + "output.dense"), DROP, self.training)
            x = self.norm(x + o, p + "output.LayerNorm")
        m = mask.unsqueeze(-1).float()
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.linear(F.dropout(pooled, 0.1, self.training), self.w("classifier.weight"), self.w("classifier.bias"))


def build(method, weights):
    model = MiniLm(weights)
    for p in model.parameters():
        p.requires_grad_(method == "full")
    if method == "freeze":
        for name, p in model.p.items():
            if name.startswith(("encoder__layer__4__", "encoder__layer__5__", "classifier__")):
                p.requires_grad_(True)
    if method == "lora":
        for i in range(LAYERS):
            for proj in ("query", "value"):
                name = f"encoder.layer.{i}.attention.self.{proj}"
                model.lora[name.replace(".", "__")] = Lora(model.w(name + ".weight"), model.w(name + ".bias"))
        model.w("classifier.weight").requires_grad_(True)
        model.w("classifier.bias").requires_grad_(True)
    return model


PHASES = ("data", "forward", "backward", "clip", "optimizer", "loop")


def training_step(forward, opt, trained, phase=lambda name: contextlib.nullcontext()):
    """One step as both benchmark peers take it; `forward` gives the loss (the ids are made once,
    so the data phase is empty here). `phase(name)` wraps each phase, for the profile."""
    def step():
        with phase("forward"):
            loss = forward()
        with phase("loop"):
            opt.zero_grad(set_to_none=True)
        with phase("backward"):
            loss.backward()
        with phase("clip"):
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
        with phase("optimizer"):
            opt.step()
    return step


def profile(forward, opt, trained, steps):
    """Per step: each phase's milliseconds (perf_counter over `steps` steps) and the native ops it
    calls (outermost aten ops in one more step under the autograd profiler)."""
    seconds = dict.fromkeys(PHASES, 0.0)

    @contextlib.contextmanager
    def timed(name):
        start = time.perf_counter()
        yield
        seconds[name] += time.perf_counter() - start

    step = training_step(forward, opt, trained, timed)
    for _ in range(steps):
        step()
    with torch.autograd.profiler.profile() as prof:
        training_step(forward, opt, trained, torch.autograd.profiler.record_function)()
    ops = dict.fromkeys(PHASES, 0)
    for e in prof.function_events:
        # An aten op inside another is that op's implementation, not a call of its own.
        if not e.name.startswith("aten::"):
            continue
        parent = e.cpu_parent
        while parent is not None and parent.name not in ops and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if parent is not None and parent.name in ops:
            ops[parent.name] += 1
    out = {p: {"ms": round(seconds[p] * 1000 / steps, 2), "ops": ops[p]} for p in PHASES}
    out["step"] = {"ms": round(sum(seconds.values()) * 1000 / steps, 2), "ops": sum(ops.values())}
    return out


def time_steps(forward, opt, steps, model, method, trained, tokens_per_step, warmup=WARMUP):
    """Runs a step `warmup` times untimed, then `steps` times timed; prints the result line both
    benchmark peers share with the Java side, with the step's profile when the command line ends
    in "profile"."""
    step = training_step(forward, opt, trained)
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    line = {
        "impl": "pytorch", "model": model, "method": method, "steps": steps, "seconds": round(seconds, 3),
        "tokens_per_second": round(steps * tokens_per_step / seconds, 1),
        "trainable": sum(p.numel() for p in trained),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "torch": torch.__version__,
    }
    if sys.argv[-1] == "profile":
        line["profile"] = profile(forward, opt, trained, steps)
    elif method == "full":
        # After the peak RSS is read: the profiler's own memory must not count against this side.
        line["step_gflop"] = round(step_matmul_flops(forward, opt, trained) / 1e9, 3)
    print(json.dumps(line))


MATMULS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}


def step_matmul_flops(forward, opt, trained):
    """The matrix-multiply FLOPs of one training step (forward and backward; the optimizer has
    none), as the autograd profiler counts them on the ops this step runs: the work the step's
    achieved GFLOP/s is reckoned from, set against the matmul peak (bench/matmul_peak.py)."""
    with torch.autograd.profiler.profile(with_flops=True) as prof:
        training_step(forward, opt, trained)()
    return sum(e.flops or 0 for e in prof.function_events if e.name in MATMULS)


def main():
    method, steps, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.manual_seed(42)
    torch.set_num_threads(2)
    model = build(method, read_safetensors(path))
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=2e-4, weight_decay=0.01)
    ids = torch.randint(1000, 20000, (BATCH, SEQ))
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    labels = torch.arange(BATCH) % 2

    def forward():
        return F.cross_entropy(model(ids, mask), labels)

    time_steps(forward, opt, steps, "minilm", method, trained, BATCH * SEQ)

if __name__ == "__main__":
    main()
