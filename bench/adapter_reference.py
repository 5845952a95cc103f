#!/usr/bin/python3
"""Reference forward and backward passes of bottleneck adapters in plain PyTorch.

An independent check of the engine's bottleneck adapters (Houlsby / Pfeiffer) on the three model
families. It shares no code with the engine; it follows the `adapters` library (adapter-hub 1.2.0)
as its source reads:

  methods/modeling.py  Adapter: adapter_down = Sequential(Linear(H, m), act), adapter_up = Linear(m, H);
                       forward: up(down(x)) * scaling, dropout, + residual_input
                       pre_forward: residual = hidden (residual_before_ln); original_ln_before:
                       hidden = LN(hidden + input_tensor) (no LN given: hidden + input_tensor)
                       post_forward: original_ln_after: LN(hidden + input_tensor) (or the plain sum)
  models/bert          BertSelfOutput / BertOutput: dense, dropout, bottleneck_layer_forward(.., LayerNorm)
                       (module paths encoder.layer.N.attention.output / encoder.layer.N.output)
  models/gpt2, llama   attention_adapters(attn_output, residual, None) and
                       output_adapters(mlp_output, residual, None) (pre-LN: no LayerNorm passed)
  activations          relu, swish = silu, gelu (erf), gelu_new (tanh), tanh (transformers.activations)

The families: BERT (post-LN, erf GELU, masked mean pooling, a linear classifier), GPT-2 (pre-LN,
Conv1D (in, out) weights, gelu_new, learned positions, tied head) and Llama (the model code of
bench/llama_reference.py: RMSNorm, RoPE, GQA, SwiGLU).

Usage: /usr/bin/python3 adapter_reference.py REQUEST.json
REQUEST.json: {"cases": [{
    "family": "bert" | "gpt2" | "llama",
    "model_dir": DIR,                  config.json + model.safetensors (Hugging Face layout)
    "trained": FILE,                   safetensors of the adapter (and head) tensors under the model's
                                       names, e.g. encoder.layer.0.output.adapters.X.adapter_down.0.weight
    "adapter": {"original_ln_before": bool, "non_linearity": str},   with "trained"
  or
    "adapter_dir": DIR,                an export in the adapters library's layout (adapter_config.json,
                                       adapter.safetensors, optionally head_config.json + model_head.safetensors)
    "input_ids": [[...]], "attention_mask": [[...]] | null,
    "probe": the output's coefficients (row-major, any nesting), or null,
    "output": FILE}]}
FILE receives {"output": logits, "loss": sum(logits * probe), "grads": {name: gradient}} for every
tensor of "trained" (gradients only with a probe), plus "checked": the tensor names read.
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference as llama  # noqa: E402  (the Llama model code; read_safetensors)

read_safetensors = llama.read_safetensors


def activation(name):
    name = name.lower()
    if name == "relu":
        return torch.relu
    if name in ("swish", "silu"):
        return F.silu
    if name == "gelu":
        return F.gelu
    if name == "gelu_new":
        return lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    if name == "tanh":
        return torch.tanh
    raise ValueError("activation %r" % name)


class Adapters:
    """The adapters of one model: module path -> tensors, and the BnConfig fields that matter."""

    def __init__(self, tensors, name, cfg):
        self.t = tensors
        self.name = name
        self.original_ln_before = cfg.get("original_ln_before", False)
        self.original_ln_after = cfg.get("original_ln_after", True)
        self.residual_before_ln = cfg.get("residual_before_ln", True)
        self.scaling = float(cfg.get("scaling", 1.0))
        self.act = activation(cfg["non_linearity"])
        for flag in ("ln_before", "ln_after", "use_gating", "is_parallel", "phm_layer"):
            if cfg.get(flag, False):
                raise ValueError("this reference does not implement %s" % flag)

    def layer(self, module, hidden_states, input_tensor, layer_norm):
        """BottleneckLayer.bottleneck_layer_forward with one adapter (or none) at `module`."""
        p = "%s.adapters.%s." % (module, self.name)
        if p + "adapter_down.0.weight" not in self.t:
            if layer_norm is not None:
                return layer_norm(hidden_states + input_tensor)
            return hidden_states + input_tensor
        # pre_forward
        residual = hidden_states if self.residual_before_ln is True else None
        if self.original_ln_before:
            hidden_states = hidden_states + input_tensor
            if self.residual_before_ln == "post_add":
                residual = hidden_states
            if layer_norm is not None:
                hidden_states = layer_norm(hidden_states)
        if not self.residual_before_ln:
            residual = hidden_states
        # Adapter.forward (dropout off: the engine compares with every rate 0)
        down = self.act(F.linear(hidden_states, self.t[p + "adapter_down.0.weight"], self.t[p + "adapter_down.0.bias"]))
        up = F.linear(down, self.t[p + "adapter_up.weight"], self.t[p + "adapter_up.bias"]) * self.scaling
        output = up + residual
        # post_forward
        if self.original_ln_after:
            if layer_norm is not None:
                output = layer_norm(output + input_tensor)
            else:
                output = output + input_tensor
        return output


def bert_forward(cfg, w, ad, head, ids, mask):
    h = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    eps = cfg.get("layer_norm_eps", 1e-12)
    b, t = ids.shape
    ln = lambda x, n: F.layer_norm(x, (h,), w[n + ".weight"], w[n + ".bias"], eps)  # noqa: E731
    x = w["embeddings.word_embeddings.weight"][ids]
    x = x + w["embeddings.position_embeddings.weight"][:t][None] + w["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "embeddings.LayerNorm")
    if mask is None:
        mask = torch.ones(b, t, dtype=torch.int64)
    additive = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    d = h // nh
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        lin = lambda v, n: F.linear(v, w[p + n + ".weight"], w[p + n + ".bias"])  # noqa: E731
        split = lambda v: v.view(b, t, nh, d).transpose(1, 2)  # noqa: E731
        q, k, v = split(lin(x, "attention.self.query")), split(lin(x, "attention.self.key")), split(lin(x, "attention.self.value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + additive, dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(b, t, h)
        attn = ad.layer(p + "attention.output", lin(ctx, "attention.output.dense"), x, lambda s: ln(s, p + "attention.output.LayerNorm"))
        ff = lin(F.gelu(lin(attn, "intermediate.dense")), "output.dense")
        x = ad.layer(p + "output", ff, attn, lambda s: ln(s, p + "output.LayerNorm"))
    m = mask[:, :, None].float()
    pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.linear(pooled, head["weight"], head["bias"])


def gpt2_forward(cfg, w, ad, ids):
    h = cfg["n_embd"]
    nh = cfg["n_head"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    b, t = ids.shape
    pre = "transformer." if "transformer.wte.weight" in w else ""
    g = lambda n: w[pre + n]  # noqa: E731
    ln = lambda x, n: F.layer_norm(x, (h,), g(n + ".weight"), g(n + ".bias"), eps)  # noqa: E731
    conv1d = lambda x, n: x @ g(n + ".weight") + g(n + ".bias")  # noqa: E731  (Conv1D: (in, out))
    gelu_new = activation("gelu_new")
    x = g("wte.weight")[ids] + g("wpe.weight")[:t][None]
    causal = torch.full((t, t), torch.finfo(torch.float32).min).triu(1)
    d = h // nh
    for i in range(cfg["n_layer"]):
        p = "h.%d." % i
        qkv = conv1d(ln(x, p + "ln_1"), p + "attn.c_attn")
        q, k, v = (z.view(b, t, nh, d).transpose(1, 2) for z in qkv.split(h, dim=2))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + causal, dim=-1)
        attn = conv1d((probs @ v).transpose(1, 2).reshape(b, t, h), p + "attn.c_proj")
        x = ad.layer("transformer." + p + "attention_adapters", attn, x, None)
        ff = conv1d(gelu_new(conv1d(ln(x, p + "ln_2"), p + "mlp.c_fc")), p + "mlp.c_proj")
        x = ad.layer("transformer." + p + "output_adapters", ff, x, None)
    x = ln(x, "ln_f")
    return x @ g("wte.weight").t()


def llama_forward(config, w, ad, input_ids, attention_mask):
    """bench/llama_reference.py's forward with the two residual sums replaced by adapter layers."""
    prefix = "model."
    batch, seq_len = input_ids.shape
    hidden = w[prefix + "embed_tokens.weight"][input_ids]
    position_ids = torch.arange(seq_len)[None, :].expand(batch, -1)
    cos, sin = llama.rotary_cos_sin(config, position_ids)
    full_mask = llama.attention_mask_4d(attention_mask, batch, seq_len, None)
    sliding_mask = llama.attention_mask_4d(attention_mask, batch, seq_len, config.sliding_window)
    nh, nkv, hd = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    linear = llama.linear
    for i in range(config.num_hidden_layers):
        p = "%slayers.%d." % (prefix, i)
        residual = hidden
        x = llama.rms_norm(hidden, w[p + "input_layernorm.weight"], config.rms_norm_eps)
        q = linear(x, w, p + "self_attn.q_proj").view(batch, seq_len, nh, hd)
        k = linear(x, w, p + "self_attn.k_proj").view(batch, seq_len, nkv, hd)
        v = linear(x, w, p + "self_attn.v_proj").view(batch, seq_len, nkv, hd)
        if config.model_type == "qwen3":
            q = llama.rms_norm(q, w[p + "self_attn.q_norm.weight"], config.rms_norm_eps)
            k = llama.rms_norm(k, w[p + "self_attn.k_norm.weight"], config.rms_norm_eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = llama.apply_rotary_pos_emb(q, k, cos, sin)
        k = llama.repeat_kv(k, nh // nkv)
        v = llama.repeat_kv(v, nh // nkv)
        scores = torch.matmul(q, k.transpose(2, 3)) * hd**-0.5
        scores = scores + (sliding_mask if config.layer_sliding[i] else full_mask)
        probs = F.softmax(scores, dim=-1, dtype=torch.float32)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(batch, seq_len, nh * hd)
        hidden = ad.layer(p + "attention_adapters", linear(out, w, p + "self_attn.o_proj"), residual, None)
        residual = hidden
        x = llama.rms_norm(hidden, w[p + "post_attention_layernorm.weight"], config.rms_norm_eps)
        mlp = linear(F.silu(linear(x, w, p + "mlp.gate_proj")) * linear(x, w, p + "mlp.up_proj"), w, p + "mlp.down_proj")
        hidden = ad.layer(p + "output_adapters", mlp, residual, None)
    hidden = llama.rms_norm(hidden, w[prefix + "norm.weight"], config.rms_norm_eps)
    head = w[prefix + "embed_tokens.weight"] if config.tie_word_embeddings else w["lm_head.weight"]
    return hidden @ head.t()


MODEL_PREFIX = {"bert": "bert.", "gpt2": "", "llama": ""}


def load_export(case, family, hidden_size, cfg_model_type):
    """Reads an adapters-library export: config, adapter tensors (renamed to the model's paths), head."""
    d = case["adapter_dir"]
    with open(os.path.join(d, "adapter_config.json")) as f:
        full = json.load(f)
    cfg = full["config"]
    families = {"bert": ("bert", "roberta"), "gpt2": ("gpt2",), "llama": ("llama", "mistral", "qwen2", "qwen3")}
    assert full["model_type"] == cfg_model_type and full["model_type"] in families[family], full["model_type"]
    assert full["hidden_size"] == hidden_size, full["hidden_size"]
    assert full["version"].startswith("adapters."), full["version"]
    name = full["name"]
    raw = read_safetensors(os.path.join(d, "adapter.safetensors"))
    m = int(hidden_size // cfg["reduction_factor"])
    tensors = {}
    locations = {"attention.output": "mh_adapter", "output": "output_adapter",
                 "attention_adapters": "mh_adapter", "output_adapters": "output_adapter"}
    for key, value in raw.items():
        pre = MODEL_PREFIX[family]
        assert key.startswith(pre), key
        k = key[len(pre):]
        module, rest = k.split(".adapters.%s." % name)
        location = next(v for s, v in locations.items() if module.endswith("." + s))
        assert cfg[location], "%s present but %s is false" % (key, location)
        expected = {"adapter_down.0.weight": [m, hidden_size], "adapter_down.0.bias": [m],
                    "adapter_up.weight": [hidden_size, m], "adapter_up.bias": [hidden_size]}[rest]
        assert list(value.shape) == expected, (key, list(value.shape), expected)
        tensors[k] = value
    head = None
    if os.path.exists(os.path.join(d, "head_config.json")):
        with open(os.path.join(d, "head_config.json")) as f:
            hc = json.load(f)
        assert hc["config"]["head_type"] == "classification" and hc["config"]["layers"] == 1, hc
        ht = read_safetensors(os.path.join(d, "model_head.safetensors"))
        hn = hc["name"]
        head = {"weight": ht["heads.%s.1.weight" % hn], "bias": ht["heads.%s.1.bias" % hn]}
        assert list(head["weight"].shape) == [hc["config"]["num_labels"], hidden_size]
    return Adapters(tensors, name, cfg), head, sorted(raw.keys())


def run(case):
    family = case["family"]
    with open(os.path.join(case["model_dir"], "config.json")) as f:
        cfg = json.load(f)
    w = read_safetensors(os.path.join(case["model_dir"], "model.safetensors"))
    hidden_size = cfg["n_embd"] if family == "gpt2" else cfg["hidden_size"]
    trained = {}
    if "trained" in case:
        trained = read_safetensors(case["trained"])
        for t in trained.values():
            t.requires_grad_(True)
        name = sorted({k.split(".adapters.")[1].split(".")[0] for k in trained if ".adapters." in k})
        assert len(name) == 1, name
        ad = Adapters(trained, name[0], case["adapter"])
        head = {"weight": trained["classifier.weight"], "bias": trained["classifier.bias"]} if family == "bert" else None
        checked = sorted(trained.keys())
    else:
        ad, head, checked = load_export(case, family, hidden_size, cfg.get("model_type"))
    ids = torch.tensor(case["input_ids"], dtype=torch.int64)
    mask = case.get("attention_mask")
    mask = None if mask is None else torch.tensor(mask, dtype=torch.int64)
    if family == "bert":
        out = bert_forward(cfg, w, ad, head, ids, mask)
    elif family == "gpt2":
        out = gpt2_forward(cfg, w, ad, ids)
    else:
        out = llama_forward(llama.Config(cfg), w, ad, ids, mask)
    result = {"output": out.tolist(), "checked": checked}
    if case.get("probe") is not None:
        loss = (out * torch.tensor(case["probe"], dtype=torch.float32).reshape(out.shape)).sum()
        loss.backward()
        result["loss"] = loss.item()
        result["grads"] = {k: t.grad.tolist() for k, t in trained.items()}
    with open(case["output"], "w") as f:
        json.dump(result, f)


def main():
    with open(sys.argv[1]) as f:
        request = json.load(f)
    for case in request["cases"]:
        run(case)


if __name__ == "__main__":
    main()
