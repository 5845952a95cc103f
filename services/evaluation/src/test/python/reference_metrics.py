"""Writes ../resources/reference-metrics.json: inputs and scikit-learn's metrics for them.

The Java metrics are checked against these numbers, an implementation that shares no code with
ours. Regenerate with Debian's python3-sklearn (1.2.1 here):

    /usr/bin/python3 services/evaluation/src/test/python/reference_metrics.py
"""
import json
import os

import numpy as np
from sklearn.metrics import (accuracy_score, confusion_matrix,
                             precision_recall_fscore_support, roc_auc_score)


def case(name, n, k, seed, skew):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), truth] += skew  # a model better than chance, not perfect
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = probs.argmax(axis=1)
    labels = list(range(k))
    out = {
        "name": name,
        "labels": [f"c{i}" for i in labels],
        "truth": truth.tolist(),
        "probabilities": probs.tolist(),
        "accuracy": accuracy_score(truth, pred),
        "confusion": confusion_matrix(truth, pred, labels=labels).tolist(),
    }
    p, r, f, s = precision_recall_fscore_support(truth, pred, labels=labels, zero_division=0)
    out["per_class"] = [{"precision": a, "recall": b, "f1": c, "support": int(d)}
                        for a, b, c, d in zip(p, r, f, s)]
    for avg in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(truth, pred, labels=labels, average=avg,
                                                     zero_division=0)
        out[avg] = {"precision": p, "recall": r, "f1": f}
    if k == 2:
        out["roc_auc"] = roc_auc_score(truth, probs[:, 1])
    # ECE (Guo et al. 2017), 15 equal-width bins (i/15, (i+1)/15], written here with numpy.
    conf = probs.max(axis=1)
    bins = np.clip(np.ceil(conf * 15).astype(int) - 1, 0, 14)
    ece = 0.0
    for b in range(15):
        mask = bins == b
        if mask.any():
            ece += abs((pred[mask] == truth[mask]).mean() - conf[mask].mean()) * mask.sum() / n
    out["ece"] = ece
    return out


cases = [
    case("three classes", 200, 3, 7, 1.0),
    case("binary", 150, 2, 11, 1.5),
    # A class that is never predicted: precision 0 by scikit-learn's zero_division=0.
    case("four classes, weak model", 60, 4, 3, 0.2),
]
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "..", "resources", "reference-metrics.json"), "w") as f:
    json.dump(cases, f, indent=1)
print("wrote", len(cases), "cases")
