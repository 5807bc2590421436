#!/usr/bin/python3
"""Peer: TF-IDF (word 1-2-grams + char_wb 2-5-grams, sublinear tf) logistic
regression, C=20, from Debian's python3-sklearn, on CLINC150.

usage: /usr/bin/python3 scripts/peers/sklearn_lr.py DATA_FULL_JSON OUT_JSON [TRAIN_SPLITS TEST_SPLITS]
(default train,val,oos_train,oos_val -> test,oos_test)"""
import sys
import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

import common

path, out = sys.argv[1], sys.argv[2]
tr_splits = sys.argv[3].split(",") if len(sys.argv) > 3 else ["train", "val", "oos_train", "oos_val"]
te_splits = sys.argv[4].split(",") if len(sys.argv) > 4 else ["test", "oos_test"]
train = common.clinc150(path, tr_splits)
test = common.clinc150(path, te_splits)
t0 = time.time()
vec = FeatureUnion([
    ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
    ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
])
X = vec.fit_transform([t for t, _ in train])
clf = LogisticRegression(C=20, max_iter=2000)
clf.fit(X, [y for _, y in train])
train_s = time.time() - t0
texts = [t for t, _ in test]
t0 = time.time()
P = clf.predict_proba(vec.transform(texts))
pred_s = time.time() - t0
# Single-message latency: one text per call.
t0 = time.time()
for t in texts[:500]:
    clf.predict_proba(vec.transform([t]))
single_ms = (time.time() - t0) / 500 * 1000
labels = list(clf.classes_)
preds = [labels[i] for i in P.argmax(1)]
confs = list(P.max(1))
pts = common.curve([y for _, y in test], preds, confs)
common.dump(common.summary("sklearn-tfidf-lr-C20", pts, dict(
    train_seconds=train_s, predict_seconds=pred_s, test_examples=len(test),
    messages_per_second=len(test) / pred_s, single_message_ms=single_ms)), out)
s = common.summary("x", pts, {})
print("sklearn LR: no threshold %.4f in-scope / %.3f oos recall; best %.4f at t=%.2f; train %.0fs, predict %.0f msg/s"
      % (s["no_threshold"]["in_scope_accuracy"], s["no_threshold"]["oos_recall"],
         s["best_in_scope"]["in_scope_accuracy"], s["best_in_scope"]["threshold"], train_s, len(test) / pred_s))
