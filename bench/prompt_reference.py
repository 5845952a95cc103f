#!/usr/bin/python3
"""Reference forward pass and gradients of prompt tuning and P-tuning in plain PyTorch.

An independent check of the engine's virtual-token seam and its two methods; it shares no code
with the engine and follows Hugging Face PEFT's prompt learning (peft/peft_model.py,
PeftModelForSequenceClassification / PeftModelForCausalLM.forward for non-prefix prompt
learning; tuners/prompt_tuning/model.py PromptEmbedding; tuners/p_tuning/model.py PromptEncoder):

  prompts         PROMPT: the embedding's weight (N, H); P_TUNING: PromptEncoder(arange(N)),
                  MLP  Linear(H,h) ReLU Linear(h,h) ReLU Linear(h,H)
                  LSTM torch.nn.LSTM(H, h, num_layers=2, bidirectional=True, batch_first=True)
                       (written out, and checked against nn.LSTM on every call),
                       then Linear(2h,2h) ReLU Linear(2h,H)
  inputs_embeds   cat(prompts expanded to the batch, word_embeddings(input_ids)), length N + T
  attention_mask  cat(ones(B, N), attention_mask)
  positions       0 .. N + T - 1 (what the base model derives from inputs_embeds), token types 0
  outputs         BERT-family classifier, by config.json's `architectures`:
                    BertForSequenceClassification (modeling_bert.py): BertPooler on
                      hidden_states[:, 0] of the whole N + T sequence (dense, tanh), then
                      `classifier`; position 0 is the first virtual token, since PEFT hands the
                      unchanged transformers model inputs_embeds
                    RobertaForSequenceClassification (modeling_roberta.py):
                      RobertaClassificationHead on hidden_states[:, 0] (classifier.dense, tanh,
                      classifier.out_proj), the same position 0
                    anything else (Tuneline's mean head, not a transformers class):
                      attention-masked mean of the T real tokens' last hidden states, then
                      `classifier`
                  The pooler is the base's and is not trained: PEFT's SEQ_CLS trains the prompt
                  and modules_to_save (`classifier`, `score`) only, and saves nothing else.
                  Causal LMs: logits of the T real tokens; with "labels" (B, T) in the case,
                  also "lm_loss", PEFT's training loss (see peft_causal_lm_loss)

The models: BERT (modeling_bert.py, eager attention, exact GELU), GPT-2 (modeling_gpt2.py,
Conv1D weights (in, out), gelu_new), and the Llama family through bench/llama_reference.py's
building blocks (RoPE, GQA, q/k norms, sliding windows).

The loss whose gradients are returned is sum(logits * R) / numel(logits) with
R[i] = sin(0.37 * i + 0.1) over the flattened logits, so no trainer code is involved.

Usage: /usr/bin/python3 prompt_reference.py REQUEST.json
REQUEST.json: {"cases": [{"family": "bert" | "gpt2" | "llama", "model_dir": DIR,
                          "method": {"method": "PROMPT" | "P_TUNING", "encoder": "MLP" | "LSTM"},
                          "state": FILE.safetensors (prompt_encoder.* and the head, if any),
                          or instead of method and state "peft_dir": a PEFT adapter directory
                          (checked for PEFT's names, shapes and config fields, then run as PEFT
                          runs it in inference mode),
                          "input_ids": [[...]], "attention_mask": [[...]], "output": FILE}]}
Each output FILE receives {"logits": [...], "loss": x, "grads": {name: [flat values]}}.
"""

import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference as lr  # noqa: E402


def read(path):
    return lr.read_safetensors(path)


# ---- the prompt ------------------------------------------------------------------------------


def prompts(method, state):
    p = {k[len("prompt_encoder."):]: v for k, v in state.items() if k.startswith("prompt_encoder.")}
    emb = p["embedding.weight"]
    if method["method"] == "PROMPT":
        return emb
    F = torch.nn.functional
    if method["encoder"] == "MLP":
        x = F.relu(F.linear(emb, p["mlp_head.0.weight"], p["mlp_head.0.bias"]))
        x = F.relu(F.linear(x, p["mlp_head.2.weight"], p["mlp_head.2.bias"]))
        return F.linear(x, p["mlp_head.4.weight"], p["mlp_head.4.bias"])
    out = lstm(p, emb)
    x = F.relu(F.linear(out, p["mlp_head.0.weight"], p["mlp_head.0.bias"]))
    return F.linear(x, p["mlp_head.2.weight"], p["mlp_head.2.bias"])


def lstm(p, emb, layers=2):
    """torch.nn.LSTM's equations (its documentation; gates i, f, g, o), bidirectional, batch 1,
    written out so gradients reach the engine's tensors; checked against nn.LSTM below."""
    x = emb
    for layer in range(layers):
        outs = []
        for suffix in ("_l%d" % layer, "_l%d_reverse" % layer):
            w_ih, w_hh = p["lstm_head.weight_ih" + suffix], p["lstm_head.weight_hh" + suffix]
            b = p["lstm_head.bias_ih" + suffix] + p["lstm_head.bias_hh" + suffix]
            hs = w_hh.shape[1]
            h = torch.zeros(hs)
            c = torch.zeros(hs)
            steps = range(x.shape[0]) if not suffix.endswith("reverse") else reversed(range(x.shape[0]))
            states = [None] * x.shape[0]
            for t in steps:
                g = w_ih @ x[t] + w_hh @ h + b
                i, f, gg, o = g.chunk(4)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
                h = torch.sigmoid(o) * torch.tanh(c)
                states[t] = h
            outs.append(torch.stack(states))
        x = torch.cat(outs, dim=1)
    with torch.no_grad():
        module = torch.nn.LSTM(emb.shape[1], p["lstm_head.weight_hh_l0"].shape[1], num_layers=layers,
                               bidirectional=True, batch_first=True)
        for name, param in module.named_parameters():
            param.copy_(p["lstm_head." + name])
        expected, _ = module(emb.detach().unsqueeze(0))
        assert (expected[0] - x.detach()).abs().max() < 1e-5, "the written-out LSTM is not nn.LSTM"
    return x


# ---- BERT ----------------------------------------------------------------------------------------


def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def hf_head(cfg):
    """The transformers class config.json names, if it is one of the two sequence classifiers
    (eval mode, so their dropouts are identities)."""
    for arch in cfg.get("architectures") or []:
        if arch in ("BertForSequenceClassification", "RobertaForSequenceClassification"):
            return arch
    return None


def bert_classifier(cfg, w, ids, mask, prompt):
    b, t = ids.shape
    n = prompt.shape[0]
    eps = cfg.get("layer_norm_eps", 1e-12)
    heads = cfg["num_attention_heads"]
    offset = cfg.get("pad_token_id", 0) + 1 if cfg.get("model_type") == "roberta" else 0
    x = w["embeddings.word_embeddings.weight"][ids]
    x = torch.cat([prompt.unsqueeze(0).expand(b, -1, -1), x], dim=1)
    s = n + t
    x = x + w["embeddings.position_embeddings.weight"][offset : offset + s]
    x = x + w["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    full_mask = torch.cat([torch.ones(b, n), mask.float()], dim=1)
    additive = (1.0 - full_mask)[:, None, None, :] * torch.finfo(torch.float32).min
    h = x.shape[-1]
    d = h // heads
    F = torch.nn.functional

    def lin(v, name):
        return F.linear(v, w[name + ".weight"], w[name + ".bias"])

    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i

        def split(v):
            return v.view(b, s, heads, d).transpose(1, 2)

        q = split(lin(x, p + "attention.self.query"))
        k = split(lin(x, p + "attention.self.key"))
        v = split(lin(x, p + "attention.self.value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + additive
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, h)
        x = layer_norm(
            lin(ctx, p + "attention.output.dense") + x,
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
            eps,
        )
        inter = F.gelu(lin(x, p + "intermediate.dense"))
        x = layer_norm(
            lin(inter, p + "output.dense") + x,
            w[p + "output.LayerNorm.weight"],
            w[p + "output.LayerNorm.bias"],
            eps,
        )
    head = hf_head(cfg)
    if head == "BertForSequenceClassification":
        pooled = torch.tanh(lin(x[:, 0], "pooler.dense"))
        return lin(pooled, "classifier")
    if head == "RobertaForSequenceClassification":
        return lin(torch.tanh(lin(x[:, 0], "classifier.dense")), "classifier.out_proj")
    real = x[:, n:, :]
    m = mask.float().unsqueeze(-1)
    pooled = (real * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.linear(pooled, w["classifier.weight"], w["classifier.bias"])


# ---- GPT-2 ---------------------------------------------------------------------------------------


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_lm(cfg, w, ids, mask, prompt):
    w = {k[len("transformer."):] if k.startswith("transformer.") else k: v for k, v in w.items()}
    b, t = ids.shape
    n = prompt.shape[0]
    s = n + t
    h = cfg["n_embd"]
    heads = cfg["n_head"]
    d = h // heads
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    x = torch.cat([prompt.unsqueeze(0).expand(b, -1, -1), w["wte.weight"][ids]], dim=1)
    x = x + w["wpe.weight"][:s]
    allowed = torch.tril(torch.ones(s, s, dtype=torch.bool))[None, None]
    if mask is not None:
        full_mask = torch.cat([torch.ones(b, n, dtype=torch.bool), mask.bool()], dim=1)
        allowed = allowed & full_mask[:, None, None, :]
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)

    def conv1d(v, name):
        return v @ w[name + ".weight"] + w[name + ".bias"]

    for i in range(cfg["n_layer"]):
        p = "h.%d." % i
        a = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        q, k, v = conv1d(a, p + "attn.c_attn").split(h, dim=2)
        q, k, v = (z.view(b, s, heads, d).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + additive
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, h)
        x = x + conv1d(ctx, p + "attn.c_proj")
        a = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        x = x + conv1d(gelu_new(conv1d(a, p + "mlp.c_fc")), p + "mlp.c_proj")
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], eps)
    return x @ w["wte.weight"].t()


# ---- Llama family --------------------------------------------------------------------------------


def llama_lm(config, w, ids, mask, prompt):
    prefix = "model." if "model.embed_tokens.weight" in w else ""
    b, t = ids.shape
    n = prompt.shape[0]
    s = n + t
    hidden = torch.cat([prompt.unsqueeze(0).expand(b, -1, -1), w[prefix + "embed_tokens.weight"][ids]], dim=1)
    full = None if mask is None else torch.cat([torch.ones(b, n, dtype=torch.int64), mask], dim=1)
    position_ids = torch.arange(s)[None, :].expand(b, -1)
    cos, sin = lr.rotary_cos_sin(config, position_ids)
    full_mask = lr.attention_mask_4d(full, b, s, None)
    sliding_mask = lr.attention_mask_4d(full, b, s, config.sliding_window)
    nh, nkv, hd = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    for i in range(config.num_hidden_layers):
        p = "%slayers.%d." % (prefix, i)
        residual = hidden
        x = lr.rms_norm(hidden, w[p + "input_layernorm.weight"], config.rms_norm_eps)
        q = lr.linear(x, w, p + "self_attn.q_proj").view(b, s, nh, hd)
        k = lr.linear(x, w, p + "self_attn.k_proj").view(b, s, nkv, hd)
        v = lr.linear(x, w, p + "self_attn.v_proj").view(b, s, nkv, hd)
        if config.model_type == "qwen3":
            q = lr.rms_norm(q, w[p + "self_attn.q_norm.weight"], config.rms_norm_eps)
            k = lr.rms_norm(k, w[p + "self_attn.k_norm.weight"], config.rms_norm_eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = lr.apply_rotary_pos_emb(q, k, cos, sin)
        k = lr.repeat_kv(k, nh // nkv)
        v = lr.repeat_kv(v, nh // nkv)
        scores = torch.matmul(q, k.transpose(2, 3)) * hd**-0.5
        scores = scores + (sliding_mask if config.layer_sliding[i] else full_mask)
        probs = torch.nn.functional.softmax(scores, dim=-1, dtype=torch.float32)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(b, s, nh * hd)
        hidden = residual + lr.linear(out, w, p + "self_attn.o_proj")
        residual = hidden
        x = lr.rms_norm(hidden, w[p + "post_attention_layernorm.weight"], config.rms_norm_eps)
        gate = lr.linear(x, w, p + "mlp.gate_proj")
        up = lr.linear(x, w, p + "mlp.up_proj")
        hidden = residual + lr.linear(torch.nn.functional.silu(gate) * up, w, p + "mlp.down_proj")
    hidden = lr.rms_norm(hidden, w[prefix + "norm.weight"], config.rms_norm_eps)
    head = w[prefix + "embed_tokens.weight"] if config.tie_word_embeddings else w["lm_head.weight"]
    return hidden @ head.t()


def read_peft(peft_dir, cfg, family):
    """Reads a PEFT prompt-learning adapter (adapter_config.json + adapter_model.safetensors) and
    checks it against PEFT's layout; returns the state that runs it (PEFT in inference mode: the
    virtual tokens are prompt_embeddings' rows) and the config."""
    with open(os.path.join(peft_dir, "adapter_config.json")) as f:
        config = json.load(f)
    tensors = read(os.path.join(peft_dir, "adapter_model.safetensors"))
    hidden = cfg.get("hidden_size", cfg.get("n_embd"))
    heads = cfg.get("num_attention_heads", cfg.get("n_head"))
    layers = cfg.get("num_hidden_layers", cfg.get("n_layer"))
    seq_cls = family == "bert"

    def check(ok, what):
        if not ok:
            raise AssertionError("%s: %s (config %s, tensors %s)" % (
                peft_dir, what, config, {k: list(v.shape) for k, v in tensors.items()}))

    check(config["peft_type"] in ("PROMPT_TUNING", "P_TUNING"), "peft_type")
    check(config["task_type"] == ("SEQ_CLS" if seq_cls else "CAUSAL_LM"), "task_type")
    check(config["inference_mode"] is True, "inference_mode")
    check(config["num_transformer_submodules"] == 1, "num_transformer_submodules")
    check(config["token_dim"] == hidden, "token_dim")
    check(config["num_attention_heads"] == heads, "num_attention_heads")
    check(config["num_layers"] == layers, "num_layers")
    check(isinstance(config.get("base_model_name_or_path"), str), "base_model_name_or_path")
    if config["peft_type"] == "PROMPT_TUNING":
        check(config["prompt_tuning_init"] in ("RANDOM", "SAMPLE_VOCAB", "TEXT"), "prompt_tuning_init")
        if config["prompt_tuning_init"] == "TEXT":
            check(isinstance(config.get("prompt_tuning_init_text"), str), "prompt_tuning_init_text")
            check(isinstance(config.get("tokenizer_name_or_path"), str), "tokenizer_name_or_path")
    else:
        check(config["encoder_reparameterization_type"] in ("MLP", "LSTM"), "encoder type")
        check(isinstance(config["encoder_hidden_size"], int), "encoder_hidden_size")
        check(config["encoder_num_layers"] == 2, "encoder_num_layers")
        check(isinstance(config["encoder_dropout"], float), "encoder_dropout")
    expected = {"prompt_embeddings"}
    if seq_cls:
        # PEFT keeps a prompt-learning model unwrapped, so a module to save is saved as
        # base_model.<its name in the transformers model>; the pooler is not among them.
        roberta_head = cfg.get("model_type") == "roberta" and hf_head(cfg) is not None
        head = ["classifier.dense", "classifier.out_proj"] if roberta_head else ["classifier"]
        expected |= {"base_model.%s.%s" % (m, p) for m in head for p in ("weight", "bias")}
        check(config["modules_to_save"] == ["classifier", "score"], "modules_to_save")
    check(set(tensors) == expected, "tensor names")
    check(list(tensors["prompt_embeddings"].shape) == [config["num_virtual_tokens"], hidden], "shape")
    state = {"prompt_encoder.embedding.weight": tensors["prompt_embeddings"]}
    for name, value in tensors.items():
        if name.startswith("base_model."):
            state[name[len("base_model."):]] = value
    return state, config


def run(case):
    with open(os.path.join(case["model_dir"], "config.json")) as f:
        cfg = json.load(f)
    weights = lr.read_weights(case["model_dir"])
    if case["family"] == "bert" and hf_head(cfg):
        # save_pretrained puts the base model under base_model_prefix; the head is unprefixed.
        prefix = cfg["model_type"] + "."
        weights = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in weights.items()}
    if "peft_dir" in case:
        state, _ = read_peft(case["peft_dir"], cfg, case["family"])
        case["method"] = {"method": "PROMPT"}
    else:
        state = read(case["state"])
    for name, value in state.items():
        value.requires_grad_(True)
    merged = dict(weights)
    merged.update(state)
    ids = torch.tensor(case["input_ids"], dtype=torch.int64)
    mask = case.get("attention_mask")
    mask = None if mask is None else torch.tensor(mask, dtype=torch.int64)
    prompt = prompts(case["method"], state)
    family = case["family"]
    if family == "bert":
        logits = bert_classifier(cfg, merged, ids, mask, prompt)
    elif family == "gpt2":
        logits = gpt2_lm(cfg, merged, ids, mask, prompt)
    else:
        logits = llama_lm(lr.Config(cfg), merged, ids, mask, prompt)
    lm_loss = None
    if family != "bert":
        n = prompt.shape[0]
        if "labels" in case:
            lm_loss = peft_causal_lm_loss(logits, torch.tensor(case["labels"], dtype=torch.int64), n)
        logits = logits[:, n:, :]
    r = torch.sin(0.37 * torch.arange(logits.numel(), dtype=torch.float64) + 0.1).float()
    loss = (logits.reshape(-1) * r).sum() / logits.numel()
    loss.backward()
    grads = {name: value.grad.reshape(-1).tolist() for name, value in state.items() if value.grad is not None}
    out = {"logits": logits.detach().tolist(), "loss": loss.item(), "grads": grads}
    if lm_loss is not None:
        out["lm_loss"] = lm_loss
    with open(case["output"], "w") as f:
        json.dump(out, f)


def peft_causal_lm_loss(logits, labels, n):
    """The loss PeftModelForCausalLM.forward gets from the base model for prompt learning:
    labels = cat(full((B, N), -100), labels) over the N + T logits, then transformers' causal-LM
    loss (shift by one, cross-entropy, mean over the labels that are not -100)."""
    b = labels.shape[0]
    full = torch.cat([torch.full((b, n), -100, dtype=torch.int64), labels], dim=1)
    shift_logits = logits[:, :-1, :].reshape(-1, logits.shape[-1]).double()
    shift_labels = full[:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100).item()


def main():
    with open(sys.argv[1]) as f:
        request = json.load(f)
    for case in request["cases"]:
        run(case)


if __name__ == "__main__":
    main()
