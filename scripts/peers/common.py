"""Shared helpers for the peer comparison scripts: dataset loading straight
from ../shared/datasets (never copied into git) and operating-curve metrics
computed exactly like `tandem eval` (in-scope accuracy counts a rejected
in-scope text as wrong; out-of-scope recall is the share of oos texts
predicted oos)."""
import json
import os

OOS = "oos"


def clinc150(path, splits):
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    out = []
    for s in splits:
        for text, intent in d[s]:
            out.append((text, OOS if s.startswith("oos_") else intent))
    return out


def curve(labels, preds, confs, thresholds=None):
    """Operating points (threshold, in-scope accuracy, oos recall): a text is
    out of scope when its top label is oos or its confidence < threshold."""
    if thresholds is None:
        thresholds = [i / 100 for i in range(0, 100)]
    pts = []
    n_in = sum(1 for y in labels if y != OOS)
    n_oos = len(labels) - n_in
    for t in thresholds:
        ok_in = hit_oos = 0
        for y, p, c in zip(labels, preds, confs):
            pred = OOS if (p == OOS or c < t) else p
            if y == OOS:
                hit_oos += pred == OOS
            else:
                ok_in += pred == y
        pts.append({"threshold": t, "in_scope_accuracy": ok_in / max(n_in, 1),
                    "oos_recall": hit_oos / max(n_oos, 1)})
    return pts


def summary(name, pts, extra):
    best = max(pts, key=lambda p: (p["in_scope_accuracy"], p["oos_recall"]))
    none = pts[0]
    return dict(peer=name, no_threshold=none, best_in_scope=best, curve=pts, **extra)


def dump(obj, out):
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(obj, f, indent=1)
