"""Loads Tuneline's exports with the real transformers and peft packages and compares outputs.

Reads CASES_DIR/cases.json, written by the engine's InteropExports (bench/interop.sh runs both):
every Llama-family variant's checkpoint, every family x method export (merged Hugging Face
directories, PEFT adapters) with the engine's logits on the same inputs, and the engine's
rendering of the Llama 3 and Qwen3 chat templates with its token ids. Shares no code with the
engine: what is compared is what transformers/peft make of the files.

Prints one line per check and a JSON summary (to SUMMARY if given); exits 1 when a strict check
fails. Strict: fp32 logits within TOL (1e-4) at every attended position, chat text and token ids
identical. Informational only: a QLoRA adapter on the unquantized base (it differs by NF4's error,
and bitsandbytes is needed to load the 4-bit base PEFT users pair it with).

    python3 bench/interop_check.py CASES_DIR [SUMMARY.json]
"""

import json
import os
import sys

import peft
import torch
import transformers
from peft import PeftModel
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer,
                          GenerationConfig)

TOL = 1e-4
device = "cuda" if torch.cuda.is_available() else "cpu"
# On a GPU, fp32 matmuls must not silently run in TF32 (10-bit mantissa) or 1e-4 is out of reach.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


ROOT = sys.argv[1] if len(sys.argv) > 1 else "."


def at(path):
    """A path of cases.json: relative to the folder cases.json is in."""
    return os.path.join(ROOT, path)


def load_base(case, directory):
    directory = at(directory)
    kwargs = {"dtype": torch.float32, "attn_implementation": "eager"}
    if case["kind"] == "classifier":
        model = AutoModelForSequenceClassification.from_pretrained(
            directory, num_labels=case["num_labels"], **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(directory, **kwargs)
    return model.to(device).eval()


def run(model, case):
    ids = torch.tensor(case["input_ids"], device=device)
    mask = torch.tensor(case["attention_mask"], device=device)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits.float().cpu()


def difference(case, logits):
    engine = torch.tensor(case["logits"]).reshape(case["logits_shape"])
    if case["kind"] == "classifier":
        return (logits - engine).abs().max().item()
    mask = torch.tensor(case["attention_mask"]).bool()
    t = mask.shape[1]
    # Prompt tuning and P-tuning: PEFT returns the virtual positions too; compare the real ones.
    logits, engine = logits[:, -t:], engine[:, -t:]
    return (logits - engine)[mask].abs().max().item()


def check_model(case):
    results = []
    if case["method"] == "none":
        model = load_base(case, case["base_dir"])
        results.append(("checkpoint", difference(case, run(model, case)), True))
        if "generated" in case:
            prompt = torch.tensor([case["generate_prompt"]], device=device)
            config = GenerationConfig(max_new_tokens=len(case["generated"]), do_sample=False,
                                      eos_token_id=None, pad_token_id=0)
            with torch.no_grad():
                tokens = model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                        generation_config=config)[0, prompt.shape[1]:].tolist()
            engine = case["generated"]
            # transformers ends at the checkpoint's EOS whatever the config says; the engine's
            # greedy() does not stop, so the tokens up to that EOS are compared.
            if len(tokens) < len(engine) and tokens and tokens[-1] == model.config.eos_token_id:
                engine = engine[:len(tokens)]
            same = tokens == engine
            if not same:
                print(f"     {case['name']}: transformers generated {tokens}, the engine {case['generated']}")
            # Reported as a difference: 0 when the tokens are the same, else infinite.
            results.append(("greedy generation (transformers generate)", 0.0 if same else float("inf"), True))
    if "merged_dir" in case:
        results.append(("merged model", difference(case, run(load_base(case, case["merged_dir"]), case)), True))
    if "adapter_dir" in case:
        model = PeftModel.from_pretrained(load_base(case, case["base_dir"]), at(case["adapter_dir"])).to(device).eval()
        strict = case["method"] != "qlora"
        what = "peft adapter" if strict else "peft adapter on the unquantized base (NF4 error, info)"
        results.append((what, difference(case, run(model, case)), strict))
        if case["method"] == "lora" and "merged_dir" in case:
            # PEFT's own merge of our adapter against the merged weights we wrote.
            theirs = model.merge_and_unload().state_dict()
            ours = load_base(case, case["merged_dir"]).state_dict()
            common = [k for k in ours if k in theirs]
            diff = max((ours[k].float().cpu() - theirs[k].float().cpu()).abs().max().item() for k in common)
            results.append((f"weights vs peft merge_and_unload ({len(common)} tensors)", diff, True))
    return results


def check_chat(case):
    tokenizer = AutoTokenizer.from_pretrained(at(case["tokenizer_dir"]))
    failures = []
    for i, item in enumerate(case["conversations"]):
        text = tokenizer.apply_chat_template(
            item["messages"], tokenize=False, add_generation_prompt=item["add_generation_prompt"])
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if text != item["text"]:
            failures.append(f"conversation {i}: text differs:\n  transformers {text!r}\n  engine       {item['text']!r}")
        elif ids != item["input_ids"]:
            failures.append(f"conversation {i}: token ids differ: transformers {ids} engine {item['input_ids']}")
    return failures


def main():
    cases = json.load(open(sys.argv[1] + "/cases.json"))
    summary = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
               "torch": torch.__version__, "transformers": transformers.__version__,
               "peft": peft.__version__, "tolerance": TOL, "checks": []}
    failed = 0
    for case in cases:
        if case["kind"] == "chat":
            try:
                problems = check_chat(case)
            except Exception as e:  # noqa: BLE001 - every case is reported, none stops the rest
                problems = [f"{type(e).__name__}: {e}"]
            ok = not problems
            failed += not ok
            n = len(case["conversations"])
            print(f"{'ok  ' if ok else 'FAIL'} {case['name']:<34} chat template text and ids, {n} renderings"
                  + ("" if ok else "\n  " + "\n  ".join(problems)))
            summary["checks"].append({"case": case["name"], "what": "chat template", "ok": ok,
                                      "problems": problems})
            continue
        try:
            results = check_model(case)
        except Exception as e:  # noqa: BLE001
            results = [("load", float("nan"), True)]
            print(f"FAIL {case['name']:<34} {type(e).__name__}: {str(e)[:400]}")
        for what, diff, strict in results:
            ok = diff <= TOL if strict else True
            failed += not ok
            if diff == diff:
                print(f"{'ok  ' if ok else 'FAIL'} {case['name']:<34} {what:<58} max |diff| {diff:.2e}")
            summary["checks"].append({"case": case["name"], "method": case["method"], "what": what,
                                      "max_abs_diff": diff, "strict": strict, "ok": ok})
    summary["failed"] = failed
    summary["passed"] = sum(1 for c in summary["checks"] if c["ok"])
    print(json.dumps({k: v for k, v in summary.items() if k != "checks"}))
    if len(sys.argv) > 2:
        json.dump(summary, open(sys.argv[2], "w"), indent=1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
