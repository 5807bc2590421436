#!/usr/bin/python3
"""TF-IDF nearest-phrasing retrieval peer for issue 4 (scikit-learn).

Input: a JSON file {"faqs": [{"id", "phrasings": [...]}], "queries": [{"text", "faq"}]}
(written by knowledge/cmd/retrieval-eval). Every phrasing is a document;
features are TF-IDF over word 1-2-grams plus char_wb 2-5-grams (fitted on the
phrasings), compared by cosine; an FAQ scores the best of its phrasings.
Prints {"queries", "recall_at_1", "recall_at_5", "mrr_at_10"} as JSON.
"""
import json
import sys

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize


def main(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    texts, owner = [], []
    ids = [faq["id"] for faq in data["faqs"]]
    for i, faq in enumerate(data["faqs"]):
        for p in faq["phrasings"]:
            texts.append(p)
            owner.append(i)
    owner = np.array(owner)
    word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), lowercase=True)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=True)
    docs = normalize(hstack([word.fit_transform(texts), char.fit_transform(texts)]).tocsr())
    queries = [q["text"] for q in data["queries"]]
    gold = [ids.index(q["faq"]) for q in data["queries"]]
    qv = normalize(hstack([word.transform(queries), char.transform(queries)]).tocsr())
    sims = (qv @ docs.T).toarray()  # queries x phrasings
    n_faq = len(ids)
    r1 = r5 = mrr = 0.0
    for qi in range(len(queries)):
        best = np.full(n_faq, -1.0)
        np.maximum.at(best, owner, sims[qi])
        order = np.argsort(-best, kind="stable")
        rank = int(np.where(order == gold[qi])[0][0])
        r1 += rank == 0
        r5 += rank < 5
        mrr += 1.0 / (rank + 1) if rank < 10 else 0.0
    n = float(len(queries))
    print(json.dumps({"queries": len(queries), "recall_at_1": r1 / n, "recall_at_5": r5 / n, "mrr_at_10": mrr / n}))


if __name__ == "__main__":
    main(sys.argv[1])
