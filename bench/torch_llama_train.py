"""The peer of the engine's TrainingThroughput for the Llama layout: the same causal LM
(config.json and model.safetensors from the directory the Java side wrote), the same method,
batch and sequence length, trained on next-token loss with torch.optim.AdamW in plain PyTorch.
Prints one JSON line.

The forward pass is LlamaForCausalLM's (eager attention, causal, no padding), built from
llama_reference.py's pieces (RMSNorm, RoPE, repeat_kv): both are the independent side.
Methods: full; freeze (the top two layers and model.norm, as the engine's Freeze(2)); lora (r 8,
alpha 16, dropout 0.05 on q_proj and v_proj, PEFT's Llama default). "@bf16" after the method holds
every frozen projection weight in bfloat16 and widens it to float32 for each matmul, as the
engine's precision bf16 does; everything else stays float32.

usage: python3 torch_llama_train.py METHOD[@bf16] STEPS MODEL_DIR [profile]
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_reference import Config, apply_rotary_pos_emb, repeat_kv, rms_norm, rotary_cos_sin  # noqa: E402
from torch_minilm_train import read_safetensors, time_steps  # noqa: E402

BATCH, SEQ, WARMUP = 8, 64, 3
FREEZE_TOP = 2
LORA_TARGETS = ("q_proj", "v_proj")
PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def key(name):
    return name.replace(".", "__")


class Llama(torch.nn.Module):
    def __init__(self, config, w):
        super().__init__()
        self.c = config
        # The loaded views become the parameters without a copy (the peak memory counts).
        self.p = torch.nn.ParameterDict({key(k): torch.nn.Parameter(v) for k, v in w.items()})
        self.lora_a = torch.nn.ParameterDict()
        self.lora_b = torch.nn.ParameterDict()
        self.held = {}  # frozen projection weights held in bf16
        self.scale, self.dropout = 16.0 / 8, 0.05

    def w(self, name):
        return self.p[key(name)]

    def linear(self, x, name):
        k = key(name + ".weight")
        weight = self.held[k].float() if k in self.held else self.p[k]
        y = F.linear(x, weight)
        if key(name) in self.lora_a:
            h = F.dropout(x, self.dropout, self.training)
            y = y + self.scale * F.linear(F.linear(h, self.lora_a[key(name)]), self.lora_b[key(name)])
        return y

    def forward(self, ids):
        c = self.c
        b, t = ids.shape
        nh, nkv, hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        x = self.w("model.embed_tokens.weight")[ids]
        cos, sin = rotary_cos_sin(c, torch.arange(t)[None, :].expand(b, -1))
        causal = torch.triu(torch.full((t, t), torch.finfo(torch.float32).min), diagonal=1)
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            h = rms_norm(x, self.w(p + "input_layernorm.weight"), c.rms_norm_eps)
            q = self.linear(h, p + "self_attn.q_proj").view(b, t, nh, hd).transpose(1, 2)
            k = self.linear(h, p + "self_attn.k_proj").view(b, t, nkv, hd).transpose(1, 2)
            v = self.linear(h, p + "self_attn.v_proj").view(b, t, nkv, hd).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            k, v = repeat_kv(k, nh // nkv), repeat_kv(v, nh // nkv)
            att = torch.softmax(q @ k.transpose(2, 3) * hd**-0.5 + causal, dim=-1, dtype=torch.float32)
            ctx = (att @ v).transpose(1, 2).reshape(b, t, nh * hd)
            x = x + self.linear(ctx, p + "self_attn.o_proj")
            h = rms_norm(x, self.w(p + "post_attention_layernorm.weight"), c.rms_norm_eps)
            gate = self.linear(h, p + "mlp.gate_proj")
            x = x + self.linear(F.silu(gate) * self.linear(h, p + "mlp.up_proj"), p + "mlp.down_proj")
        x = rms_norm(x, self.w("model.norm.weight"), c.rms_norm_eps)
        return F.linear(x, self.w("lm_head.weight"))


def build(method, config, weights):
    method, _, precision = method.partition("@")
    model = Llama(config, weights)
    for p in model.parameters():
        p.requires_grad_(method == "full")
    if method == "freeze":
        n = config.num_hidden_layers
        top = tuple(key(f"model.layers.{i}.") for i in range(n - FREEZE_TOP, n)) + (key("model.norm."),)
        for name, p in model.p.items():
            if name.startswith(top):
                p.requires_grad_(True)
    if method == "lora":
        for i in range(config.num_hidden_layers):
            for target in LORA_TARGETS:
                name = f"model.layers.{i}.self_attn.{target}"
                out_features, in_features = model.w(name + ".weight").shape
                a = torch.nn.Parameter(torch.empty(8, in_features))
                torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))
                model.lora_a[key(name)] = a
                model.lora_b[key(name)] = torch.nn.Parameter(torch.zeros(out_features, 8))
    elif method != "full" and method != "freeze":
        raise ValueError(f"method {method}: full, freeze or lora")
    if precision == "bf16":
        for i in range(config.num_hidden_layers):
            for proj in PROJECTIONS:
                k = key(f"model.layers.{i}.{proj}.weight")
                if not model.p[k].requires_grad:
                    model.held[k] = model.p[k].detach().to(torch.bfloat16)
                    del model.p[k]
    elif precision not in ("", "fp32"):
        raise ValueError(f"precision {precision}: fp32 or bf16")
    return model


def main():
    method, steps, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.manual_seed(42)
    torch.set_num_threads(2)
    with open(f"{directory}/config.json") as f:
        config = Config(json.load(f))
    model = build(method, config, read_safetensors(f"{directory}/model.safetensors"))
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=2e-4, weight_decay=0.01)
    ids = torch.randint(0, config.vocab_size, (BATCH, SEQ))

    def forward():
        logits = model(ids)
        # Labels are the inputs; position t predicts token t + 1, as LlamaForCausalLM shifts them.
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))

    time_steps(forward, opt, steps, "llama", method, trained, BATCH * SEQ, WARMUP)


if __name__ == "__main__":
    main()
