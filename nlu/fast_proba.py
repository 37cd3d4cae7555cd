"""The intent classifier's probabilities in one pass, the same numbers as sklearn's.

`CalibratedClassifierCV(LinearSVC, cv=5, method="sigmoid")` (nlu/classifier.py) predicts by
asking each of its five calibrated SVMs for decision scores and then calling one sigmoid
calibrator per class and SVM: about 200 small numpy calls for one message, 15 % of the Rasa
server's time per message in a profile of `make bench-chat`. `FastProba` does the same arithmetic
in a few array operations: one sparse product with the five SVMs' coefficients side by side
(each score summed over the same non-zeros in the same order), each calibrator's
`expit(-(a * score + b))` as one broadcast, then sklearn's own normalisation, clipping and
mean. `build` returns it only for the model shape above, and only when it gives exactly
(bit for bit) sklearn's probabilities on probe texts; otherwise the classifier keeps sklearn's
path.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder
from sklearn.svm import LinearSVC
from sklearn.utils.extmath import safe_sparse_dot

log = logging.getLogger(__name__)

PROBES = ["3号楼消防通道被堵了", "楼道灯坏了", "你好", "谢谢", "电梯又坏了，老人上不去楼",
          "楼上装修每天早上七点就开始电钻", "怎么交物业费", "着火了"]


class FastProba:
    def __init__(self, model: Pipeline) -> None:
        self.features = model[:-1]
        calibrated: CalibratedClassifierCV = model.steps[-1][1]
        self.n_classes = len(calibrated.classes_)
        coefs, self.parts = [], []
        lo = 0
        for part in calibrated.calibrated_classifiers_:
            svm = part.base_estimator if hasattr(part, "base_estimator") else part.estimator
            if not isinstance(svm, LinearSVC) or part.method != "sigmoid" or \
                    not all(isinstance(c, _SigmoidCalibration) for c in part.calibrators):
                raise TypeError("not a sigmoid-calibrated LinearSVC")
            k = svm.coef_.shape[0]
            if k != len(part.calibrators) or self.n_classes <= 2:
                raise TypeError("unexpected shape")
            pos = LabelEncoder().fit(part.classes).transform(svm.classes_)
            a = np.array([c.a_ for c in part.calibrators], dtype=np.float64)
            b = np.array([c.b_ for c in part.calibrators], dtype=np.float64)
            coefs.append(np.asarray(svm.coef_).T)
            self.parts.append((lo, lo + k, svm.intercept_, a, b, pos))
            lo += k
        self.coef_t = np.ascontiguousarray(np.hstack(coefs))

    @classmethod
    def build(cls, model: Any) -> FastProba | None:
        """The fast path for `model`, or None (sklearn's path) when it does not fit or differs."""
        try:
            fast = cls(model)
            same = np.array_equal(fast(PROBES), model.predict_proba(PROBES))
        except (TypeError, AttributeError, ValueError, IndexError) as exc:
            log.info("intent probabilities: sklearn's path (%s)", exc)
            return None
        if not same:
            log.warning("intent probabilities: the fast path differs from sklearn's; not used")
            return None
        return fast

    def __call__(self, docs: list[str]) -> np.ndarray:
        x = self.features.transform(docs)
        scores = safe_sparse_dot(x, self.coef_t, dense_output=True)
        n = scores.shape[0]
        mean = np.zeros((n, self.n_classes))
        for lo, hi, intercept, a, b, pos in self.parts:
            proba = np.zeros((n, self.n_classes))
            proba[:, pos] = expit(-(a * (scores[:, lo:hi] + intercept) + b))
            denominator = np.sum(proba, axis=1)[:, np.newaxis]
            uniform = np.full_like(proba, 1 / self.n_classes)
            proba = np.divide(proba, denominator, out=uniform, where=denominator != 0)
            proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
            mean += proba
        mean /= len(self.parts)
        return mean
