#!/usr/bin/python3
"""Writes a random checkpoint of Llama-3.2-1B's shape (1.24B parameters, BF16, two shards and
model.safetensors.index.json, tied head, llama3 rope scaling) into DIR, tensor by tensor, for
bench/llama-load.sh: no pretrained weights can be downloaded here. Weights normal(0, 0.02), norms 1.

Usage: /usr/bin/python3 llama_1b_checkpoint.py DIR   (2.5 GB on disk, about 40 s)
"""
import json, os, struct, sys, torch
out = sys.argv[1]
cfg = {"architectures": ["LlamaForCausalLM"], "attention_bias": False, "bos_token_id": 128000,
       "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
       "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072,
       "mlp_bias": False, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
       "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
       "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                        "original_max_position_embeddings": 8192, "rope_type": "llama3"},
       "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16", "vocab_size": 128256}
os.makedirs(out, exist_ok=True)
json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
h, i, v, L = 2048, 8192, 128256, 16
shapes = [("model.embed_tokens.weight", [v, h])]
for l in range(L):
    p = "model.layers.%d." % l
    shapes += [(p+"self_attn.q_proj.weight", [2048, h]), (p+"self_attn.k_proj.weight", [512, h]),
               (p+"self_attn.v_proj.weight", [512, h]), (p+"self_attn.o_proj.weight", [h, 2048]),
               (p+"mlp.gate_proj.weight", [i, h]), (p+"mlp.up_proj.weight", [i, h]),
               (p+"mlp.down_proj.weight", [h, i]), (p+"input_layernorm.weight", [h]),
               (p+"post_attention_layernorm.weight", [h])]
shapes.append(("model.norm.weight", [h]))
half = len(shapes) // 2
shards = [shapes[:half], shapes[half:]]
names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
wm = {}
g = torch.Generator().manual_seed(0)
total = 0
for fn, part in zip(names, shards):
    header, off = {}, 0
    for n, s in part:
        nb = 2
        for d in s: nb *= d
        header[n] = {"dtype": "BF16", "shape": s, "data_offsets": [off, off + nb]}
        off += nb; wm[n] = fn
    hb = json.dumps(header).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(os.path.join(out, fn), "wb") as f:
        f.write(struct.pack("<Q", len(hb))); f.write(hb)
        for n, s in part:
            if n.endswith("norm.weight"):
                t = torch.ones(s)
            else:
                t = torch.randn(s, generator=g) * 0.02
            f.write(t.to(torch.bfloat16).view(torch.int16).numpy().tobytes())
    total += off
json.dump({"metadata": {"total_size": total}, "weight_map": wm}, open(os.path.join(out, "model.safetensors.index.json"), "w"))
print("params", total // 2)
