#!/usr/bin/env python3
"""Independent plain-PyTorch reference for prefix tuning (P-tuning v2) on the three families the
engine implements: a BERT-family classifier (mean pooling over the real tokens, a linear head),
GPT-2 and the Llama family (RoPE, GQA, Qwen3 q/k norms, Mistral's sliding window).

Written from PEFT's peft_model.py (get_prompt: view (B, N, L*2, H, head_dim), permute
[2, 0, 3, 1, 4], split in pairs; N ones in front of the attention mask) and transformers'
modeling files (positions after past_key_values: BertEmbeddings' past_key_values_length,
GPT2Model's past_length, LlamaModel's cache_position; the prefix enters as cached keys/values, so
it gets no RoPE rotation and no k_norm). Shares no code with the engine: reads config.json and the
safetensors files itself (struct + json + torch only).

Usage: prefix_reference.py request.json. The request holds "cases"; each case:
  family: bert | gpt2 | llama; model_dir: a Hugging Face directory (config.json, model.safetensors)
  method: {"format": "tuneline", "file": tuneline_method.safetensors, "virtual_tokens": N,
           "projection_hidden_size": h}   (prompt_encoder.* weights, run through the encoder)
       or {"format": "peft", "dir": directory with adapter_config.json + adapter_model.safetensors}
  input_ids [[...]], attention_mask [[...]] or null, labels (bert: [c...]; LMs: [[...]] with -100)
  grads: whether to backpropagate the loss to the method's (and a classifier head's) parameters
  output: where to write {"logits": ..., "loss": ..., "grads": {name: flat values}}
"""
import json
import math
import struct
import sys

import torch
import torch.nn.functional as F

torch.set_grad_enabled(True)

# Added to masked scores (transformers adds the dtype's lowest value; any value whose exp() is 0).
MASKED = -1e30


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = bytearray(data[base + start:base + end])
        shape = info["shape"]
        if info["dtype"] == "F32":
            t = torch.frombuffer(raw, dtype=torch.float32).clone()
        elif info["dtype"] == "BF16":
            t = torch.frombuffer(raw, dtype=torch.int16).to(torch.int32) << 16
            t = t.view(torch.float32).clone()
        else:
            raise ValueError(f"{path}: {name} has dtype {info['dtype']}")
        out[name] = t.reshape(shape).double()
    return out


def prefix_from_method(method, weights_needing_grad):
    """The (N, L * 2 * token_dim) prefix, as PEFT's PrefixEncoder computes it."""
    if method["format"] == "peft":
        w = read_safetensors(method["dir"] + "/adapter_model.safetensors")
        return w["prompt_embeddings"], w
    w = read_safetensors(method["file"])
    for t in w.values():
        t.requires_grad_(True)
    weights_needing_grad.update(w)
    e = w["prompt_encoder.embedding.weight"]
    if method.get("projection_hidden_size", 0) > 0:
        h = torch.tanh(e @ w["prompt_encoder.transform.0.weight"].T + w["prompt_encoder.transform.0.bias"])
        return h @ w["prompt_encoder.transform.2.weight"].T + w["prompt_encoder.transform.2.bias"], w
    return e, w


def peft_past_key_values(prefix, batch, layers, kv_heads, head_dim):
    """PEFT's get_prompt: per layer (keys, values), each (B, kv_heads, N, head_dim)."""
    n = prefix.shape[0]
    pkv = prefix.unsqueeze(0).expand(batch, -1, -1)
    pkv = pkv.reshape(batch, n, layers * 2, kv_heads, head_dim)
    pkv = pkv.permute([2, 0, 3, 1, 4]).split(2)
    return [(p[0], p[1]) for p in pkv]


def layer_norm(x, w, b, eps):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


def bert(cfg, W, ids, mask, prefix_kv, n):
    strip = "bert." if "bert.embeddings.word_embeddings.weight" in W else (
        "roberta." if "roberta.embeddings.word_embeddings.weight" in W else "")
    g = lambda k: W[strip + k]
    B, T = ids.shape
    H = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    d = H // heads
    eps = cfg.get("layer_norm_eps", 1e-12)
    offset = cfg.get("pad_token_id", 1) + 1 if cfg.get("model_type") == "roberta" else 0
    pos = torch.arange(n, n + T) + offset
    x = g("embeddings.word_embeddings.weight")[ids] + g("embeddings.position_embeddings.weight")[pos] \
        + g("embeddings.token_type_embeddings.weight")[0]
    x = layer_norm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
    m = mask if mask is not None else torch.ones(B, T, dtype=torch.float64)
    full = torch.cat([torch.ones(B, n, dtype=torch.float64), m], 1)
    add = (1.0 - full)[:, None, None, :] * MASKED
    lin = lambda x, p: x @ g(p + ".weight").T + g(p + ".bias")
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        split = lambda t: t.reshape(B, T, heads, d).transpose(1, 2)
        q = split(lin(x, p + "attention.self.query"))
        k = split(lin(x, p + "attention.self.key"))
        v = split(lin(x, p + "attention.self.value"))
        if prefix_kv is not None:
            k = torch.cat([prefix_kv[l][0], k], 2)
            v = torch.cat([prefix_kv[l][1], v], 2)
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + add, -1)
        ctx = (probs @ v).transpose(1, 2).reshape(B, T, H)
        x = layer_norm(x + lin(ctx, p + "attention.output.dense"),
                       g(p + "attention.output.LayerNorm.weight"), g(p + "attention.output.LayerNorm.bias"), eps)
        ff = lin(F.gelu(lin(x, p + "intermediate.dense")), p + "output.dense")
        x = layer_norm(x + ff, g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"), eps)
    # Mean over the real tokens only: the prefix has no hidden states of its own.
    mm = m[:, :, None]
    pooled = (x * mm).sum(1) / mm.sum(1).clamp(min=1e-9)
    return pooled @ W["classifier.weight"].T + W["classifier.bias"]


def gpt2(cfg, W, ids, mask, prefix_kv, n):
    g = lambda k: W["transformer." + k] if "transformer." + k in W else W[k]
    B, T = ids.shape
    H = cfg["n_embd"]
    heads = cfg["n_head"]
    d = H // heads
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    wte = g("wte.weight")
    x = wte[ids] + g("wpe.weight")[n:n + T]
    allowed = torch.arange(n + T)[None, :] <= (torch.arange(T)[:, None] + n)
    allowed = allowed[None, None].expand(B, 1, T, n + T)
    if mask is not None:
        real = torch.cat([torch.ones(B, n, dtype=torch.float64), mask], 1) > 0
        allowed = allowed & real[:, None, None, :]
    add = (~allowed).double() * MASKED
    conv = lambda x, p: x @ g(p + ".weight") + g(p + ".bias")  # Conv1D: (in, out)
    for l in range(cfg["n_layer"]):
        p = f"h.{l}."
        h = layer_norm(x, g(p + "ln_1.weight"), g(p + "ln_1.bias"), eps)
        q, k, v = conv(h, p + "attn.c_attn").split(H, -1)
        q, k, v = (t.reshape(B, T, heads, d).transpose(1, 2) for t in (q, k, v))
        if prefix_kv is not None:
            k = torch.cat([prefix_kv[l][0], k], 2)
            v = torch.cat([prefix_kv[l][1], v], 2)
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + add, -1)
        ctx = (probs @ v).transpose(1, 2).reshape(B, T, H)
        x = x + conv(ctx, p + "attn.c_proj")
        h = layer_norm(x, g(p + "ln_2.weight"), g(p + "ln_2.bias"), eps)
        x = x + conv(F.gelu(conv(h, p + "mlp.c_fc"), approximate="tanh"), p + "mlp.c_proj")
    x = layer_norm(x, g("ln_f.weight"), g("ln_f.bias"), eps)
    return x @ wte.T


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def llama(cfg, W, ids, mask, prefix_kv, n):
    B, T = ids.shape
    H = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    d = cfg.get("head_dim") or H // heads
    eps = cfg["rms_norm_eps"]
    if cfg.get("rope_scaling"):
        raise ValueError("rope_scaling is not implemented in this reference")
    window = cfg.get("sliding_window") if cfg.get("model_type") == "mistral" else None
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    pos = torch.arange(n, n + T, dtype=torch.float64)  # cache_position after N cached prefixes
    ang = torch.cat([pos[:, None] * inv[None], pos[:, None] * inv[None]], -1)
    cos, sin = ang.cos(), ang.sin()
    rot = lambda t: t * cos + torch.cat([-t[..., d // 2:], t[..., :d // 2]], -1) * sin
    qpos = torch.arange(T)[:, None] + n
    kpos = torch.arange(n + T)[None, :]
    allowed = kpos <= qpos
    if window:
        allowed = allowed & (qpos - kpos < window)
    allowed = allowed[None, None].expand(B, 1, T, n + T)
    if mask is not None:
        real = torch.cat([torch.ones(B, n, dtype=torch.float64), mask], 1) > 0
        allowed = allowed & real[:, None, None, :]
    add = (~allowed).double() * MASKED

    def lin(x, p):
        y = x @ W[p + ".weight"].T
        return y + W[p + ".bias"] if p + ".bias" in W else y

    x = W["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"], eps)
        q = lin(h, p + "self_attn.q_proj").reshape(B, T, heads, d)
        k = lin(h, p + "self_attn.k_proj").reshape(B, T, kv, d)
        v = lin(h, p + "self_attn.v_proj").reshape(B, T, kv, d).transpose(1, 2)
        if p + "self_attn.q_norm.weight" in W:
            q = rms(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms(k, W[p + "self_attn.k_norm.weight"], eps)
        q = rot(q.transpose(1, 2))
        k = rot(k.transpose(1, 2))
        if prefix_kv is not None:
            k = torch.cat([prefix_kv[l][0], k], 2)
            v = torch.cat([prefix_kv[l][1], v], 2)
        k = k.repeat_interleave(heads // kv, 1)
        v = v.repeat_interleave(heads // kv, 1)
        probs = torch.softmax(q @ k.transpose(-1, -2) * d ** -0.5 + add, -1)
        ctx = (probs @ v).transpose(1, 2).reshape(B, T, heads * d)
        x = x + lin(ctx, p + "self_attn.o_proj")
        m = rms(x, W[p + "post_attention_layernorm.weight"], eps)
        gt = lin(m, p + "mlp.gate_proj")
        x = x + lin(F.silu(gt) * lin(m, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms(x, W["model.norm.weight"], eps)
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["model.embed_tokens.weight"]
    return x @ head.T


def sizes(family, cfg):
    """(layers, kv heads, head_dim): PEFT's num_layers, num_attention_heads, token_dim / heads."""
    if family == "bert":
        return cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["hidden_size"] // cfg["num_attention_heads"]
    if family == "gpt2":
        return cfg["n_layer"], cfg["n_head"], cfg["n_embd"] // cfg["n_head"]
    heads = cfg["num_attention_heads"]
    return (cfg["num_hidden_layers"], cfg.get("num_key_value_heads") or heads,
            cfg.get("head_dim") or cfg["hidden_size"] // heads)


def run(case):
    family = case["family"]
    with open(case["model_dir"] + "/config.json") as f:
        cfg = json.load(f)
    W = read_safetensors(case["model_dir"] + "/model.safetensors")
    trained = {}
    prefix, method_weights = prefix_from_method(case["method"], trained)
    if case["method"]["format"] == "peft":
        for name, t in method_weights.items():
            # modules_to_save of a SEQ_CLS adapter: base_model.classifier.* replaces the head.
            if name.startswith("base_model."):
                W[name[len("base_model."):]] = t
    ids = torch.tensor(case["input_ids"], dtype=torch.long)
    mask = None if case.get("attention_mask") is None else torch.tensor(case["attention_mask"], dtype=torch.float64)
    B = ids.shape[0]
    layers, kv_heads, head_dim = sizes(family, cfg)
    checks = {}
    if case["method"]["format"] == "peft":
        # Read the adapter as PEFT would: its config sizes the view of prompt_embeddings.
        with open(case["method"]["dir"] + "/adapter_config.json") as f:
            ac = json.load(f)
        expect_names = {"prompt_embeddings"}
        if ac["task_type"] == "SEQ_CLS":
            expect_names |= {"base_model.classifier.weight", "base_model.classifier.bias"}
        checks = {
            "peft_type": ac["peft_type"] == "PREFIX_TUNING",
            "task_type": ac["task_type"] == ("SEQ_CLS" if family == "bert" else "CAUSAL_LM"),
            "inference_mode": ac["inference_mode"] is True,
            "names": set(method_weights) == expect_names,
            "num_layers": ac["num_layers"] == layers,
            "num_attention_heads": ac["num_attention_heads"] == kv_heads,
            "token_dim": ac["token_dim"] == kv_heads * head_dim,
            "num_transformer_submodules": ac["num_transformer_submodules"] == 1,
            "shape": list(prefix.shape) == [ac["num_virtual_tokens"], ac["num_layers"] * 2 * ac["token_dim"]],
            "base_model_name_or_path": bool(ac.get("base_model_name_or_path")),
            "prefix_projection": isinstance(ac.get("prefix_projection"), bool),
        }
        layers, kv_heads = ac["num_layers"], ac["num_attention_heads"]
        head_dim = ac["token_dim"] // ac["num_attention_heads"]
    pkv = peft_past_key_values(prefix, B, layers, kv_heads, head_dim)
    n = prefix.shape[0]
    if family == "bert":
        for name in ("classifier.weight", "classifier.bias"):
            W[name].requires_grad_(True)
            trained[name] = W[name]
        logits = bert(cfg, W, ids, mask, pkv, n)
        loss = F.cross_entropy(logits, torch.tensor(case["labels"], dtype=torch.long))
    else:
        logits = (gpt2 if family == "gpt2" else llama)(cfg, W, ids, mask, pkv, n)
        labels = torch.tensor(case["labels"], dtype=torch.long)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=-100)
    out = {"logits": logits.detach().tolist(), "loss": loss.item(), "checks": checks}
    if case.get("grads"):
        loss.backward()
        out["grads"] = {k: t.grad.reshape(-1).tolist() for k, t in trained.items()}
    with open(case["output"], "w") as f:
        json.dump(out, f)


def main():
    with open(sys.argv[1]) as f:
        request = json.load(f)
    for case in request["cases"]:
        run(case)


if __name__ == "__main__":
    main()
