"""Label-free accuracy predictors on every evaluated dataset, from the stored clean logits.

Average confidence and the nuclear norm need only the target set. Difference of confidence
(DoC) and average thresholded confidence (ATC) also need a labelled *source* set: the study's
dataset with role ``id`` (the validation split). Labels of the target sets are never read.
Agreement between two models is a cross-model quantity; it is computed from the stored
per-sample predictions by :func:`robustlens.lines.invariance.analysis.agreement_matrix`.
"""

from __future__ import annotations

from collections.abc import Mapping

from robustlens.errors import ConfigError
from robustlens.measure import DatasetContext, DatasetInfo, Measure, MeasureOutput
from robustlens.metrics.label_free import (
    SourceCalibration,
    average_confidence,
    calibrate_on_source,
    nuclear_norm,
)
from robustlens.roles import is_labelled

__all__ = ["ATC_SCORES", "SOURCE_ROLE", "LabelFreeMeasure"]

#: the role of the labelled source set that DoC and ATC calibrate on
SOURCE_ROLE = "id"
#: the scores ATC thresholds (values ``atc_maxconf``, ``atc_negentropy``)
ATC_SCORES = ("maxconf", "negentropy")


class LabelFreeMeasure(Measure):
    """Average confidence, nuclear norm, DoC and ATC (max-confidence and negative entropy).

    On every dataset except the ``train`` role, from the dataset-space probabilities of the
    clean view:

    - ``avg_confidence`` = ``(1/N) sum_n max_k p[n, k]`` (Hendrycks & Gimpel, ICLR 2017);
    - ``nuclear_norm`` = ``||P||_* / sqrt(N * min(N, K))`` (Deng et al., ICML 2023);
    - ``doc`` = ``acc_src - (AC_src - AC_tgt)`` (Guillory et al., ICCV 2021);
    - ``atc_maxconf`` and ``atc_negentropy``: the fraction of target scores above the
      threshold learned on the source set (Garg et al., ICLR 2022).

    The source is the dataset named by ``source``, or else the study's one dataset with role
    ``id``. DoC and ATC compare scores across sets, so they are reported only for datasets with
    the source's number of classes (ImageNet-R's 200-class subset is skipped against the
    1000-class validation set); the skipped datasets are listed in the artifacts.

    Args:
        source: name of the labelled source dataset (default: the ``id``-role dataset).
    """

    name = "label_free"
    label_free = True  # reads unlabelled datasets
    description = "label-free accuracy predictors: confidence, nuclear norm, DoC, ATC"
    paper = (
        "Guillory et al., ICCV 2021 (DoC); Garg et al., ICLR 2022 (ATC); Deng et al., "
        "ICML 2023 (nuclear norm)"
    )

    def __init__(self, source: str | None = None) -> None:
        self.source = source

    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        return {} if dataset.role == "train" else {"clean": False}

    def _source_name(self, datasets: Mapping[str, DatasetInfo]) -> str:
        if self.source is not None:
            if self.source not in datasets:
                raise ConfigError(
                    f"label_free: source dataset {self.source!r} is not among the evaluated "
                    f"datasets {sorted(datasets)}; set measure_options.label_free.source to one "
                    "of them"
                )
            if not is_labelled(datasets[self.source].role):
                raise ConfigError(
                    f"label_free: source dataset {self.source!r} is unlabelled; DoC and ATC "
                    "calibrate on a labelled source (e.g. the validation split)"
                )
            return self.source
        ids = [n for n, i in datasets.items() if i.role == SOURCE_ROLE]
        if not ids:
            raise ConfigError(
                f"label_free: DoC and ATC need a labelled source dataset with role "
                f"{SOURCE_ROLE!r} (e.g. world split 'val' or layout 'imagenet_val'); the study "
                f"has roles {sorted({i.role for i in datasets.values()})}. Add one, or name it "
                "with measure_options.label_free.source"
            )
        if len(ids) > 1:
            raise ConfigError(
                f"label_free: several datasets have role {SOURCE_ROLE!r} ({ids}); choose the "
                "source with measure_options.label_free.source"
            )
        return ids[0]

    def compute_datasets(self, data: Mapping[str, DatasetContext], out: MeasureOutput) -> None:
        src = self._source_name({name: d.info for name, d in data.items()})
        source = data[src]
        p_src, _ = source.predictions()
        y_src = source.arrays.labels()
        # learned once: each target's DoC and ATC are those of the pure functions
        calibration: SourceCalibration | None = (
            calibrate_on_source(p_src, y_src, ATC_SCORES) if len(p_src) else None
        )
        skipped: dict[str, str] = {}
        for d in data.values():
            name = d.name
            p, _ = d.predictions()
            if len(p) == 0:
                skipped[name] = "no readable images"
                continue
            out.values[(name, "avg_confidence")] = average_confidence(p)
            out.values[(name, "nuclear_norm")] = nuclear_norm(p)
            if calibration is None:
                skipped[name] = f"source {src!r} has no readable images"
                continue
            if p.shape[1] != calibration.n_classes:
                skipped[name] = (
                    f"{p.shape[1]} classes vs {calibration.n_classes} in source {src!r}: "
                    "DoC/ATC skipped"
                )
                continue
            out.values[(name, "doc")] = calibration.doc(p)
            for score in ATC_SCORES:
                out.values[(name, f"atc_{score}")] = calibration.atc(p, score)
        out.artifacts = {"source": src, "source_accuracy": None, "atc_thresholds": {}}
        if calibration is not None:
            out.artifacts["source_accuracy"] = calibration.accuracy
            out.artifacts["atc_thresholds"] = dict(calibration.thresholds)
        out.artifacts["skipped"] = skipped
