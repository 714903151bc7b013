"""Pure metric functions: numpy arrays or torch tensors in, floats or arrays out. No I/O."""

from robustlens.metrics.classification import accuracy, ece, multi_label_accuracy, predictions
from robustlens.metrics.clustering import cluster_indicators
from robustlens.metrics.corruption_error import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    corruption_errors,
    mce,
    relative_corruption_errors,
    relative_mce,
)
from robustlens.metrics.critical_band import critical_band, critical_band_or_none
from robustlens.metrics.effective_robustness import (
    IMAGENET_BASELINES,
    effective_robustness,
    fit_baseline,
    imagenet_baseline,
    relative_robustness,
)
from robustlens.metrics.invariance import (
    effective_invariance,
    invariance_per_view,
    rotation_invariance,
)
from robustlens.metrics.label_free import (
    agreement,
    atc,
    average_confidence,
    calibrate_on_source,
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

__all__ = [
    "ALEXNET_CLEAN_ERROR",
    "ALEXNET_ERRORS",
    "IMAGENET_BASELINES",
    "accuracy",
    "agreement",
    "atc",
    "average_confidence",
    "calibrate_on_source",
    "cluster_indicators",
    "component_contributions",
    "corruption_errors",
    "critical_band",
    "critical_band_or_none",
    "difference_of_confidence",
    "ece",
    "effective_invariance",
    "effective_robustness",
    "find_spurious_components",
    "fit_baseline",
    "imagenet_baseline",
    "invariance_per_view",
    "mce",
    "multi_label_accuracy",
    "neural_pca",
    "nuclear_norm",
    "predictions",
    "relative_corruption_errors",
    "relative_mce",
    "relative_robustness",
    "rotation_invariance",
    "shape_bias",
    "shape_bias_per_category",
    "spectral_bias",
    "spufix",
    "spurious_score",
]
