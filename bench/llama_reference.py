#!/usr/bin/python3
"""Reference forward pass of Llama-family causal LMs (llama, mistral, qwen2, qwen3) in plain PyTorch.

An independent check of the engine's Java decoder: it shares no code with it and follows the
semantics of Hugging Face transformers' modeling files (modeling_llama.py, modeling_mistral.py,
modeling_qwen2.py, modeling_qwen3.py, modeling_rope_utils.py, masking_utils.py) with the eager
attention path:

  LlamaRMSNorm        weight * (x.float() * rsqrt(mean(x^2) + eps)).to(dtype)
  LlamaRotaryEmbedding inv_freq from ROPE_INIT_FUNCTIONS[rope_type], cos/sin of cat(freqs, freqs)
                      times attention_scaling
  apply_rotary_pos_emb q * cos + rotate_half(q) * sin, rotate_half(x) = cat(-x2, x1)
  repeat_kv           key/value heads expanded to the query heads
  eager_attention     softmax(q k^T * head_dim^-0.5 + mask) in float32, @ v
  LlamaMLP            down(silu(gate(x)) * up(x))
  Qwen3Attention      q_norm/k_norm (RMSNorm over head_dim) before RoPE
  sliding window      key visible when q_idx - sliding_window < kv_idx <= q_idx

It needs only torch (Debian's python3-torch); safetensors files are read with struct + json +
torch.frombuffer. Position ids are 0..T-1 for every row, as the HF forward without position_ids.

Usage: /usr/bin/python3 llama_reference.py REQUEST.json
REQUEST.json: {"cases": [{"model_dir": DIR, "input_ids": [[...]], "attention_mask": [[...]] | null,
                          "output": FILE}]}
Each FILE receives {"logits": [B][T][V]} as JSON (float32 values written exactly).
A case may set "bf16_weights": true: the layers' projection weights (q/k/v/o, gate/up/down; not
lm_head, not the embedding) are first rounded to bfloat16 (tensor.to(torch.bfloat16), round to
nearest even) and the forward pass runs on those values in float32: the engine's precision bf16.
A case may set "fp16_autocast": true: those projections run as torch.autocast(float16) runs a
linear layer, input and weight rounded to float16 (tensor.half()), the product accumulated in
float32 and rounded to float16, the bias (if any) added in float32: the engine's precision fp16
with half matmuls. Emulated with float32 matmuls on half-rounded values because this torch (1.13)
has no CPU half matmul ("addmm_impl_cpu_" not implemented for 'Half').
"""

import json
import math
import os
import struct
import sys

import torch

DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F64": torch.float64,
}


def read_safetensors(path):
    """All tensors of one safetensors file, widened to float32."""
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    start = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = bytearray(data[start + begin : start + end])
        dtype = DTYPES[info["dtype"]]
        if len(raw) == 0:
            t = torch.zeros(info["shape"], dtype=dtype)
        else:
            t = torch.frombuffer(raw, dtype=dtype).reshape(info["shape"])
        tensors[name] = t.to(torch.float32)
    return tensors


def read_weights(model_dir):
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single)
    with open(os.path.join(model_dir, "model.safetensors.index.json")) as f:
        index = json.load(f)
    tensors = {}
    stored_bytes = 0
    for shard in sorted(set(index["weight_map"].values())):
        path = os.path.join(model_dir, shard)
        part = read_safetensors(path)
        # As transformers loads a sharded checkpoint: by the weight_map, each name from the shard
        # the map gives; a name the map puts elsewhere, or one missing, is an error.
        mapped = {n for n, s in index["weight_map"].items() if s == shard}
        if set(part) != mapped:
            raise ValueError("%s holds %s, the index maps %s to it" % (shard, sorted(part), sorted(mapped)))
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len).decode("utf-8"))
        stored_bytes += sum(i["data_offsets"][1] - i["data_offsets"][0] for n, i in header.items() if n != "__metadata__")
        tensors.update(part)
    total = index.get("metadata", {}).get("total_size")
    if total is not None and total != stored_bytes:
        raise ValueError("index metadata.total_size %d, the shards hold %d bytes" % (total, stored_bytes))
    return tensors


class Config:
    def __init__(self, d):
        self.model_type = d["model_type"]
        self.hidden_size = d["hidden_size"]
        self.num_hidden_layers = d["num_hidden_layers"]
        self.num_attention_heads = d["num_attention_heads"]
        self.num_key_value_heads = d.get("num_key_value_heads") or self.num_attention_heads
        self.head_dim = d.get("head_dim") or self.hidden_size // self.num_attention_heads
        self.rms_norm_eps = d.get("rms_norm_eps", 1e-6)
        self.rope_theta = d.get("rope_theta", 10000.0)
        self.rope_scaling = d.get("rope_scaling")
        self.max_position_embeddings = d.get("max_position_embeddings", 2048)
        self.tie_word_embeddings = d.get("tie_word_embeddings", False)
        self.vocab_size = d["vocab_size"]
        # Which layers use a sliding window (MistralConfig: all when sliding_window is set;
        # Qwen2Config/Qwen3Config: with use_sliding_window, layer_types or max_window_layers).
        n = self.num_hidden_layers
        if self.model_type == "mistral":
            self.sliding_window = d.get("sliding_window")
            self.layer_sliding = [self.sliding_window is not None] * n
        elif self.model_type in ("qwen2", "qwen3"):
            use = d.get("use_sliding_window", False)
            self.sliding_window = d.get("sliding_window") if use else None
            types = d.get("layer_types")
            if types is None:
                mwl = d.get("max_window_layers", 28)
                types = [
                    "sliding_attention" if self.sliding_window is not None and i >= mwl else "full_attention"
                    for i in range(n)
                ]
            self.layer_sliding = [t == "sliding_attention" and self.sliding_window is not None for t in types]
        else:
            self.sliding_window = None
            self.layer_sliding = [False] * n


# ---- modeling_rope_utils.py -------------------------------------------------------------------


def default_inv_freq(base, dim):
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def rope_parameters(config, seq_len):
    """(inv_freq, attention_scaling) as ROPE_INIT_FUNCTIONS[rope_type](config, device, seq_len)."""
    base = config.rope_theta
    dim = config.head_dim
    rs = config.rope_scaling
    rope_type = "default" if rs is None else rs.get("rope_type", rs.get("type", "default"))
    if rope_type == "default":
        return default_inv_freq(base, dim), 1.0
    if rope_type == "linear":
        inv_freq = default_inv_freq(base, dim)
        inv_freq /= rs["factor"]
        return inv_freq, 1.0
    if rope_type == "dynamic":
        max_pos = config.max_position_embeddings
        factor = rs["factor"]
        seq_len = seq_len if seq_len is not None and seq_len > max_pos else max_pos
        base = base * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2))
        return default_inv_freq(base, dim), 1.0
    if rope_type == "llama3":
        inv_freq = default_inv_freq(base, dim)
        factor = rs["factor"]
        low_freq_factor = rs["low_freq_factor"]
        high_freq_factor = rs["high_freq_factor"]
        old_context_len = rs["original_max_position_embeddings"]
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
        is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
        return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama), 1.0
    if rope_type == "yarn":
        original_max = rs.get("original_max_position_embeddings") or config.max_position_embeddings
        # transformers v5: factor as given, else the ratio of the two context lengths.
        factor = rs.get("factor")
        if factor is None:
            factor = config.max_position_embeddings / original_max
        attention_factor = rs.get("attention_factor")
        mscale = rs.get("mscale")
        mscale_all_dim = rs.get("mscale_all_dim")

        def get_mscale(scale, m=1):
            if scale <= 1:
                return 1.0
            return 0.1 * m * math.log(scale) + 1.0

        if attention_factor is None:
            if mscale and mscale_all_dim:
                attention_factor = float(get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim))
            else:
                attention_factor = get_mscale(factor)
        beta_fast = rs.get("beta_fast") or 32
        beta_slow = rs.get("beta_slow") or 1

        def find_correction_dim(num_rotations):
            return (dim * math.log(original_max / (num_rotations * 2 * math.pi))) / (2 * math.log(base))

        low = find_correction_dim(beta_fast)
        high = find_correction_dim(beta_slow)
        if rs.get("truncate", True):
            low = math.floor(low)
            high = math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001
        ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
        pos_freqs = base ** (torch.arange(0, dim, 2).float() / dim)
        inv_freq_extrapolation = 1.0 / pos_freqs
        inv_freq_interpolation = 1.0 / (factor * pos_freqs)
        extrapolation_factor = 1 - ramp
        inv_freq = (
            inv_freq_interpolation * (1 - extrapolation_factor) + inv_freq_extrapolation * extrapolation_factor
        )
        return inv_freq, attention_factor
    raise ValueError("rope_type %r is not implemented in this reference" % rope_type)


def rotary_cos_sin(config, position_ids):
    # dynamic_rope_update: the frequencies follow max(position_ids) + 1 (stateless here).
    seq_len = int(position_ids.max()) + 1
    inv_freq, attention_scaling = rope_parameters(config, seq_len)
    inv_freq_expanded = inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    position_ids_expanded = position_ids[:, None, :].float()
    freqs = (inv_freq_expanded @ position_ids_expanded).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * attention_scaling, emb.sin() * attention_scaling


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    cos = cos.unsqueeze(1)
    sin = sin.unsqueeze(1)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


# ---- modules ------------------------------------------------------------------------------------


def rms_norm(x, weight, eps):
    input_dtype = x.dtype
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return weight * h.to(input_dtype)


BF16_WEIGHTS = False
FP16_AUTOCAST = False


def linear(x, w, name):
    weight = w[name + ".weight"]
    if BF16_WEIGHTS:
        weight = weight.to(torch.bfloat16).to(torch.float32)
    if FP16_AUTOCAST:
        half = weight.half().float()
        y = (x.half().float() @ half.t()).half().float()
    else:
        y = x @ weight.t()
    if name + ".bias" in w:
        y = y + w[name + ".bias"]
    return y


def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


def attention_mask_4d(attention_mask, batch, seq_len, sliding_window):
    """Additive (B, 1, T, T) mask: 0 where allowed, finfo(float32).min elsewhere."""
    q_idx = torch.arange(seq_len)[:, None]
    kv_idx = torch.arange(seq_len)[None, :]
    allowed = kv_idx <= q_idx
    if sliding_window is not None:
        allowed = allowed & (kv_idx > q_idx - sliding_window)
    allowed = allowed[None, None, :, :].expand(batch, 1, seq_len, seq_len)
    if attention_mask is not None:
        allowed = allowed & attention_mask[:, None, None, :].bool()
    mask = torch.zeros(batch, 1, seq_len, seq_len, dtype=torch.float32)
    return mask.masked_fill(~allowed, torch.finfo(torch.float32).min)


def forward(config, w, input_ids, attention_mask):
    prefix = "model." if "model.embed_tokens.weight" in w else ""
    batch, seq_len = input_ids.shape
    hidden = w[prefix + "embed_tokens.weight"][input_ids]
    position_ids = torch.arange(seq_len)[None, :].expand(batch, -1)
    cos, sin = rotary_cos_sin(config, position_ids)
    full_mask = attention_mask_4d(attention_mask, batch, seq_len, None)
    sliding_mask = attention_mask_4d(attention_mask, batch, seq_len, config.sliding_window)
    nh, nkv, hd = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    scaling = hd**-0.5
    for i in range(config.num_hidden_layers):
        p = "%slayers.%d." % (prefix, i)
        residual = hidden
        x = rms_norm(hidden, w[p + "input_layernorm.weight"], config.rms_norm_eps)
        q = linear(x, w, p + "self_attn.q_proj").view(batch, seq_len, nh, hd)
        k = linear(x, w, p + "self_attn.k_proj").view(batch, seq_len, nkv, hd)
        v = linear(x, w, p + "self_attn.v_proj").view(batch, seq_len, nkv, hd)
        if config.model_type == "qwen3":
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], config.rms_norm_eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], config.rms_norm_eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        k = repeat_kv(k, nh // nkv)
        v = repeat_kv(v, nh // nkv)
        scores = torch.matmul(q, k.transpose(2, 3)) * scaling
        scores = scores + (sliding_mask if config.layer_sliding[i] else full_mask)
        probs = torch.nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(batch, seq_len, nh * hd)
        hidden = residual + linear(out, w, p + "self_attn.o_proj")
        residual = hidden
        x = rms_norm(hidden, w[p + "post_attention_layernorm.weight"], config.rms_norm_eps)
        gate = linear(x, w, p + "mlp.gate_proj")
        up = linear(x, w, p + "mlp.up_proj")
        hidden = residual + linear(torch.nn.functional.silu(gate) * up, w, p + "mlp.down_proj")
    hidden = rms_norm(hidden, w[prefix + "norm.weight"], config.rms_norm_eps)
    head = w[prefix + "embed_tokens.weight"] if config.tie_word_embeddings else w["lm_head.weight"]
    return hidden @ head.t()


def main():
    with open(sys.argv[1]) as f:
        request = json.load(f)
    global BF16_WEIGHTS, FP16_AUTOCAST
    torch.set_grad_enabled(False)
    for case in request["cases"]:
        BF16_WEIGHTS = bool(case.get("bf16_weights", False))
        FP16_AUTOCAST = bool(case.get("fp16_autocast", False))
        with open(os.path.join(case["model_dir"], "config.json")) as f:
            config = Config(json.load(f))
        weights = read_weights(case["model_dir"])
        ids = torch.tensor(case["input_ids"], dtype=torch.int64)
        mask = case.get("attention_mask")
        mask = None if mask is None else torch.tensor(mask, dtype=torch.int64)
        logits = forward(config, weights, ids, mask)
        with open(case["output"], "w") as f:
            json.dump({"logits": logits.tolist()}, f)


if __name__ == "__main__":
    main()
