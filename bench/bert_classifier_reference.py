"""Independent reference for Tuneline's Hugging Face classification head export.

Reads a directory the engine exported (config.json + model.safetensors) and checks it is what
transformers' BertForSequenceClassification / RobertaForSequenceClassification save_pretrained
writes, then computes the logits of that model in eval mode with plain PyTorch, written from
transformers' modeling_bert.py and modeling_roberta.py (BertEmbeddings, BertSelfAttention,
BertSelfOutput, BertIntermediate, BertOutput, BertPooler, BertForSequenceClassification;
RobertaEmbeddings.create_position_ids_from_input_ids, RobertaClassificationHead). It shares no
code with the engine: safetensors is read with struct + json + torch.frombuffer only, and the
expected tensor names are spelled out here from the modules' attribute names.

Usage: bert_classifier_reference.py REQUEST.json, where REQUEST is
  {"cases": [{"model_dir": ..., "input_ids": [[...]], "attention_mask": [[...]], "output": ...}]}
Each output gets {"logits": [[...]], "names": n, "architecture": ...}. Any layout or config
problem exits non-zero, naming it.
"""

import json
import math
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    tensors = {}
    metadata = header.pop("__metadata__", {})
    for name, info in header.items():
        start, end = info["data_offsets"]
        raw = bytearray(data[base + start : base + end])
        t = torch.frombuffer(raw, dtype=DTYPES[info["dtype"]]) if raw else torch.zeros(0)
        tensors[name] = t.reshape(info["shape"]).to(torch.float32)
    return tensors, metadata


def fail(message):
    print("reference: " + message, file=sys.stderr)
    sys.exit(1)


def expected_shapes(config):
    """The state dict of *ForSequenceClassification, as modeling_bert/modeling_roberta name it."""
    roberta = config["model_type"] == "roberta"
    p = "roberta." if roberta else "bert."
    h = config["hidden_size"]
    i = config["intermediate_size"]
    labels = len(config["id2label"])
    s = {
        p + "embeddings.word_embeddings.weight": [config["vocab_size"], h],
        p + "embeddings.position_embeddings.weight": [config["max_position_embeddings"], h],
        p + "embeddings.token_type_embeddings.weight": [config.get("type_vocab_size", 2), h],
        p + "embeddings.LayerNorm.weight": [h],
        p + "embeddings.LayerNorm.bias": [h],
    }
    for layer in range(config["num_hidden_layers"]):
        q = p + "encoder.layer.%d." % layer
        for name in ("query", "key", "value"):
            s[q + "attention.self." + name + ".weight"] = [h, h]
            s[q + "attention.self." + name + ".bias"] = [h]
        s[q + "attention.output.dense.weight"] = [h, h]
        s[q + "attention.output.dense.bias"] = [h]
        s[q + "attention.output.LayerNorm.weight"] = [h]
        s[q + "attention.output.LayerNorm.bias"] = [h]
        s[q + "intermediate.dense.weight"] = [i, h]
        s[q + "intermediate.dense.bias"] = [i]
        s[q + "output.dense.weight"] = [h, i]
        s[q + "output.dense.bias"] = [h]
        s[q + "output.LayerNorm.weight"] = [h]
        s[q + "output.LayerNorm.bias"] = [h]
    if roberta:
        # RobertaForSequenceClassification builds RobertaModel(add_pooling_layer=False).
        s["classifier.dense.weight"] = [h, h]
        s["classifier.dense.bias"] = [h]
        s["classifier.out_proj.weight"] = [labels, h]
        s["classifier.out_proj.bias"] = [labels]
    else:
        s["bert.pooler.dense.weight"] = [h, h]
        s["bert.pooler.dense.bias"] = [h]
        s["classifier.weight"] = [labels, h]
        s["classifier.bias"] = [labels]
    return s


def check_config(config):
    roberta = config.get("model_type") == "roberta"
    want = "RobertaForSequenceClassification" if roberta else "BertForSequenceClassification"
    if config.get("architectures") != [want]:
        fail("architectures %r, expected [%r]" % (config.get("architectures"), want))
    id2label = config["id2label"]
    label2id = config["label2id"]
    if sorted(int(k) for k in id2label) != list(range(len(id2label))):
        fail("id2label keys are not 0..n-1: %r" % list(id2label))
    if {v: int(k) for k, v in id2label.items()} != label2id:
        fail("label2id is not the inverse of id2label")
    if config.get("num_labels", len(id2label)) != len(id2label):
        fail("num_labels %r != %d labels" % (config.get("num_labels"), len(id2label)))
    if config.get("problem_type") != "single_label_classification":
        fail("problem_type %r" % config.get("problem_type"))
    if config.get("hidden_act", "gelu") != "gelu":
        fail("hidden_act %r" % config.get("hidden_act"))
    if config.get("position_embedding_type", "absolute") != "absolute":
        fail("position_embedding_type %r" % config.get("position_embedding_type"))
    return want


def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def linear(x, w, b):
    return x @ w.T + b


def logits(config, t, ids, mask):
    roberta = config["model_type"] == "roberta"
    p = "roberta." if roberta else "bert."
    eps = config.get("layer_norm_eps", 1e-12)
    heads = config["num_attention_heads"]
    h = config["hidden_size"]
    d = h // heads
    b, n = ids.shape
    if roberta:
        # create_position_ids_from_input_ids: padding tokens keep padding_idx, the others count
        # from padding_idx + 1.
        pad = config.get("pad_token_id", 1)
        m = ids.ne(pad).int()
        positions = (torch.cumsum(m, dim=1).type_as(m) * m).long() + pad
    else:
        positions = torch.arange(n).unsqueeze(0).expand(b, n)
    x = (
        t[p + "embeddings.word_embeddings.weight"][ids]
        + t[p + "embeddings.position_embeddings.weight"][positions]
        + t[p + "embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)]
    )
    x = layer_norm(x, t[p + "embeddings.LayerNorm.weight"], t[p + "embeddings.LayerNorm.bias"], eps)
    # get_extended_attention_mask: (1 - mask) * finfo.min, broadcast over heads and queries.
    additive = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for layer in range(config["num_hidden_layers"]):
        q = p + "encoder.layer.%d." % layer

        def proj(name, inp):
            return linear(inp, t[q + name + ".weight"], t[q + name + ".bias"])

        def split(z):
            return z.view(b, n, heads, d).permute(0, 2, 1, 3)

        query = split(proj("attention.self.query", x))
        key = split(proj("attention.self.key", x))
        value = split(proj("attention.self.value", x))
        scores = query @ key.transpose(-1, -2) / math.sqrt(d) + additive
        context = (torch.softmax(scores, dim=-1) @ value).permute(0, 2, 1, 3).reshape(b, n, h)
        a = layer_norm(
            proj("attention.output.dense", context) + x,
            t[q + "attention.output.LayerNorm.weight"],
            t[q + "attention.output.LayerNorm.bias"],
            eps,
        )
        inner = torch.nn.functional.gelu(proj("intermediate.dense", a))
        x = layer_norm(
            proj("output.dense", inner) + a,
            t[q + "output.LayerNorm.weight"],
            t[q + "output.LayerNorm.bias"],
            eps,
        )
    first = x[:, 0]
    if roberta:
        # RobertaClassificationHead (dropout is the identity in eval mode).
        z = torch.tanh(linear(first, t["classifier.dense.weight"], t["classifier.dense.bias"]))
        return linear(z, t["classifier.out_proj.weight"], t["classifier.out_proj.bias"])
    pooled = torch.tanh(linear(first, t["bert.pooler.dense.weight"], t["bert.pooler.dense.bias"]))
    return linear(pooled, t["classifier.weight"], t["classifier.bias"])


def main():
    request = json.load(open(sys.argv[1]))
    for case in request["cases"]:
        directory = case["model_dir"]
        config = json.load(open(directory + "/config.json"))
        architecture = check_config(config)
        tensors, metadata = read_safetensors(directory + "/model.safetensors")
        if metadata.get("format") != "pt":
            fail("safetensors metadata format %r (transformers wants 'pt')" % metadata.get("format"))
        want = expected_shapes(config)
        missing = sorted(set(want) - set(tensors))
        unexpected = sorted(set(tensors) - set(want))
        if missing or unexpected:
            fail("%s: missing %r, unexpected %r" % (directory, missing, unexpected))
        for name, shape in want.items():
            if list(tensors[name].shape) != shape:
                fail("%s: %s has shape %r, expected %r" % (directory, name, list(tensors[name].shape), shape))
        ids = torch.tensor(case["input_ids"], dtype=torch.long)
        mask = torch.tensor(case["attention_mask"], dtype=torch.long)
        with torch.no_grad():
            out = logits(config, {k: v.double() for k, v in tensors.items()}, ids, mask)
        with open(case["output"], "w") as f:
            json.dump({"logits": out.tolist(), "names": len(want), "architecture": architecture}, f)


if __name__ == "__main__":
    main()
