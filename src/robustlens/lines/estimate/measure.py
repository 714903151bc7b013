"""The per-sample top-1 predictions that agreement between models is computed from.

Agreement is a cross-model quantity: on a dataset, how often two models predict the same class
(Jiang et al., "Assessing Generalization of SGD via Disagreement", ICLR 2022; Baek et al.,
"Agreement-on-the-Line", NeurIPS 2022). The measure writes each model's top-1 prediction of
every sample; :func:`robustlens.lines.estimate.analysis.agreement_values` turns them into each
model's mean agreement with the others, per dataset. No label is read, so unlabelled datasets
are included.
"""

from __future__ import annotations

from robustlens.measure import DatasetContext, DatasetInfo, Measure, MeasureOutput

__all__ = ["TOP1", "AgreementMeasure"]

#: the per-sample column: the top-1 class of the clean view, in the dataset's class space
TOP1 = "top1"


class AgreementMeasure(Measure):
    """Top-1 prediction of every sample of every dataset but ``train`` (clean view).

    Per-sample columns ``sample_id`` and ``top1`` (the argmax of the dataset-space
    probabilities, :func:`~robustlens.measure.dataset_predictions`); no per-dataset value.
    Labels are never read: unlabelled datasets are included.
    """

    name = "agreement"
    label_free = True  # reads unlabelled datasets
    description = "top-1 predictions of every sample, for the agreement between models"
    paper = (
        "Jiang et al., Assessing Generalization of SGD via Disagreement, ICLR 2022; Baek et "
        "al., Agreement-on-the-Line, NeurIPS 2022"
    )

    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        return {} if dataset.role == "train" else {"clean": False}

    def compute_dataset(self, data: DatasetContext, out: MeasureOutput) -> None:
        _, pred = data.predictions("clean")
        out.per_sample[data.name] = {
            "sample_id": data.arrays.sample_ids(),
            TOP1: pred.astype("int64"),
        }
