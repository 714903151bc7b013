"""Effective invariance (EI) under rotation and grayscale, per dataset and per sample.

Reference: W. Deng, S. Gould, L. Zheng, "On the Strong Correlation Between Model Invariance
and Generalization", NeurIPS 2022.

The measure asks the engine for five views of every evaluated dataset (``clean``, ``rot90``,
``rot180``, ``rot270``, ``gray``; grayscale is applied to pixels in [0, 1] before the model's
normalization, see :func:`robustlens.views.registry.gray_pixels`) and compares the stored
probabilities with :mod:`robustlens.metrics.invariance`. It runs no model itself: the only
forward passes are the views.
"""

from __future__ import annotations

import numpy as np

from robustlens.measure import DatasetContext, DatasetInfo, Measure, MeasureOutput
from robustlens.metrics.invariance import invariance_per_view

__all__ = ["EXCLUDED_ROLES", "INVARIANCE_VIEWS", "ROTATION_VIEWS", "InvarianceMeasure"]

#: the three rotated views whose EI is averaged into the rotation EI (Deng et al.)
ROTATION_VIEWS = ("rot90", "rot180", "rot270")
#: every view the measure requests on a dataset it evaluates
INVARIANCE_VIEWS = ("clean", *ROTATION_VIEWS, "gray")
#: roles not evaluated: the training split, and the adversarial subset (a copy of val images)
EXCLUDED_ROLES = frozenset({"train", "adversarial"})


class InvarianceMeasure(Measure):
    """Rotation and grayscale effective invariance and prediction agreement.

    For each evaluated dataset, with ``p`` the dataset-space probabilities of the clean view
    (:func:`~robustlens.measure.dataset_predictions` with the study's class mapping) and
    ``p_v`` those of view ``v``:

    - per sample: ``ei_rotation = (1/3) sum_{r in 90,180,270} EI(p, p_r)`` and
      ``ei_gray = EI(p, p_gray)`` where ``EI = sqrt(p[y] * p_v[y_v])`` if ``y == y_v`` else 0
      (:func:`~robustlens.metrics.invariance.effective_invariance`, every view at once by
      :func:`~robustlens.metrics.invariance.invariance_per_view`); ``agree_rot90``,
      ``agree_rot180``, ``agree_rot270``, ``agree_gray`` are the top-1 agreements
      ``argmax p == argmax p_v``;
    - per dataset: ``ei_rotation`` and ``ei_gray`` are the means of the per-sample values,
      ``agreement_rotation`` the mean agreement over samples and the three rotations, and
      ``agreement_gray`` the mean grayscale agreement.

    Every dataset is evaluated except the roles in :data:`EXCLUDED_ROLES`. No labels and no
    features are used.
    """

    name = "invariance"
    label_free = True  # reads unlabelled datasets
    description = "effective invariance (EI) and agreement under rotation and grayscale"
    paper = (
        "Deng, Gould, Zheng, On the Strong Correlation Between Model Invariance and "
        "Generalization, NeurIPS 2022"
    )

    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        if dataset.role in EXCLUDED_ROLES:
            return {}
        return dict.fromkeys(INVARIANCE_VIEWS, False)

    def compute_dataset(self, data: DatasetContext, out: MeasureOutput) -> None:
        name = data.name
        probs = {v: data.predictions(v)[0] for v in INVARIANCE_VIEWS}
        p = probs["clean"]
        if len(p) == 0:  # every image was skipped as unreadable
            for metric in ("ei_rotation", "ei_gray", "agreement_rotation", "agreement_gray"):
                out.values[(name, metric)] = float("nan")
            return
        others = INVARIANCE_VIEWS[1:]
        ei_views, agree_views = invariance_per_view(p, [probs[v] for v in others])
        ei = dict(zip(others, ei_views, strict=True))
        agree = dict(zip(others, agree_views, strict=True))
        # rotation_invariance(p, rotated): the mean EI over the rotated views
        ei_rot = np.stack([ei[v] for v in ROTATION_VIEWS]).mean(axis=0)
        ei_gray = ei["gray"]
        out.values[(name, "ei_rotation")] = float(ei_rot.mean())
        out.values[(name, "ei_gray")] = float(ei_gray.mean())
        out.values[(name, "agreement_rotation")] = float(
            np.mean([agree[v].mean() for v in ROTATION_VIEWS])
        )
        out.values[(name, "agreement_gray")] = float(agree["gray"].mean())
        out.per_sample[name] = {
            "sample_id": data.arrays.sample_ids(),
            "ei_rotation": ei_rot,
            "ei_gray": ei_gray,
            **{f"agree_{v}": agree[v] for v in INVARIANCE_VIEWS[1:]},
        }
