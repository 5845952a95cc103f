"""The peer of the engine's TrainingThroughput for GPT-2: the same causal LM (config.json and
model.safetensors from the directory the Java side wrote), the same method, batch and sequence
length, trained on next-token loss with torch.optim.AdamW in plain PyTorch. Prints one JSON line.

The model is Hugging Face's GPT2LMHeadModel written out (the transformers package is not
installed here): Conv1D projections with (in, out) weights applied with addmm, gelu_new spelled
out as transformers spells it, the LM head tied to wte. Like the engine's Gpt2LmModel it has no
dropout; only LoRA's input dropout (0.05) runs, on both sides.

usage: python3 torch_gpt2_train.py METHOD STEPS MODEL_DIR [profile]   (profile: see torch_minilm_train.py)
"""
import json
import math
import sys

import torch
import torch.nn.functional as F

from torch_minilm_train import Lora, read_safetensors, time_steps

BATCH, SEQ, WARMUP = 8, 64, 3
PREFIX = "transformer."
# The engine's FineTuningMethod.Freeze(2, false, []) on GPT-2: the top two blocks and ln_f.
FREEZE_TOP = 2


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Gpt2(torch.nn.Module):
    def __init__(self, config, w):
        super().__init__()
        self.hidden, self.heads = config["n_embd"], config["n_head"]
        self.layers, self.eps = config["n_layer"], config.get("layer_norm_epsilon", 1e-5)
        # The loaded views become the parameters without a copy: a second 330 MB would be
        # counted in the peak memory.
        self.p = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v) for k, v in w.items()})
        self.lora = torch.nn.ModuleDict()

    def w(self, name):
        return self.p[(PREFIX + name).replace(".", "__")]

    def conv1d(self, x, name):
        key = (PREFIX + name).replace(".", "__")
        if key in self.lora:
            return self.lora[key](x)
        return torch.addmm(self.w(name + ".bias"), x, self.w(name + ".weight"))

    def norm(self, x, name):
        return F.layer_norm(x, (self.hidden,), self.w(name + ".weight"), self.w(name + ".bias"), self.eps)

    def forward(self, ids, mask):
        b, t = ids.shape
        h, d = self.hidden, self.hidden // self.heads
        x = self.w("wte.weight")[ids] + self.w("wpe.weight")[:t]
        causal = torch.triu(torch.full((t, t), -1e9), diagonal=1)
        bias = causal + (1.0 - mask[:, None, None, :].float()) * -1e9
        x = x.reshape(b * t, h)
        for i in range(self.layers):
            p = f"h.{i}."
            qkv = self.conv1d(self.norm(x, p + "ln_1"), p + "attn.c_attn")
            q, k, v = qkv.view(b, t, 3, self.heads, d).permute(2, 0, 3, 1, 4)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(b * t, h)
            x = x + self.conv1d(ctx, p + "attn.c_proj")
            x = x + self.conv1d(gelu_new(self.conv1d(self.norm(x, p + "ln_2"), p + "mlp.c_fc")), p + "mlp.c_proj")
        x = self.norm(x, "ln_f")
        return F.linear(x, self.w("wte.weight")).view(b, t, -1)


def build(method, config, weights):
    weights = {(k if k.startswith(PREFIX) else PREFIX + k): v for k, v in weights.items()
               if k != "lm_head.weight" and not k.endswith((".attn.bias", ".attn.masked_bias"))}
    model = Gpt2(config, weights)
    for p in model.parameters():
        p.requires_grad_(method == "full")
    if method == "freeze":
        top = tuple(f"{PREFIX}h.{i}.".replace(".", "__") for i in range(model.layers - FREEZE_TOP, model.layers))
        for name, p in model.p.items():
            if name.startswith(top + ((PREFIX + "ln_f.").replace(".", "__"),)):
                p.requires_grad_(True)
    if method == "lora":
        for i in range(model.layers):
            name = f"h.{i}.attn.c_attn"
            model.lora[(PREFIX + name).replace(".", "__")] = Lora(
                model.w(name + ".weight"), model.w(name + ".bias"), fan_in_fan_out=True)
    return model


def main():
    method, steps, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.manual_seed(42)
    torch.set_num_threads(2)
    with open(f"{directory}/config.json") as f:
        config = json.load(f)
    model = build(method, config, read_safetensors(f"{directory}/model.safetensors"))
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=2e-4, weight_decay=0.01)
    ids = torch.randint(0, config["vocab_size"], (BATCH, SEQ))
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)

    def forward():
        logits = model(ids, mask)
        # Labels are the inputs; position t predicts token t + 1, as GPT2LMHeadModel shifts them.
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                               ignore_index=-100)

    time_steps(forward, opt, steps, "gpt2", method, trained, BATCH * SEQ, WARMUP)

if __name__ == "__main__":
    main()
