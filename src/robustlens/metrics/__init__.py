"""Pure metric functions: numpy arrays or torch tensors in, floats or arrays out. No I/O."""

from robustlens.metrics.classification import accuracy, ece, multi_label_accuracy, predictions
from robustlens.metrics.clustering import cluster_indicators
from robustlens.metrics.critical_band import critical_band, critical_band_or_none
from robustlens.metrics.effective_robustness import (
    IMAGENET_BASELINES,
    effective_robustness,
    fit_baseline,
    imagenet_baseline,
    relative_robustness,
)
from robustlens.metrics.invariance import effective_invariance, rotation_invariance
from robustlens.metrics.label_free import (
    agreement,
    atc,
    average_confidence,
    difference_of_confidence,
    nuclear_norm,
)
from robustlens.metrics.shape_bias import shape_bias, shape_bias_per_category
from robustlens.metrics.spectral import spectral_bias
from robustlens.metrics.spurious import (
    component_contributions,
    find_spurious_components,
    neural_pca,
    spufix,
    spurious_score,
)

_LAZY = {  # these pull in torch/torchvision: imported on first use only
    "pgd_attack": "robustlens.transforms.adversarial",
    "band_noise": "robustlens.transforms.frequency",
    "fft_filter": "robustlens.transforms.frequency",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'robustlens.metrics' has no attribute {name!r}")


__all__ = [
    "IMAGENET_BASELINES",
    "accuracy",
    "agreement",
    "atc",
    "average_confidence",
    "band_noise",
    "cluster_indicators",
    "component_contributions",
    "critical_band",
    "critical_band_or_none",
    "difference_of_confidence",
    "ece",
    "effective_invariance",
    "effective_robustness",
    "fft_filter",
    "find_spurious_components",
    "fit_baseline",
    "imagenet_baseline",
    "multi_label_accuracy",
    "neural_pca",
    "nuclear_norm",
    "pgd_attack",
    "predictions",
    "relative_robustness",
    "rotation_invariance",
    "shape_bias",
    "shape_bias_per_category",
    "spectral_bias",
    "spufix",
    "spurious_score",
]
