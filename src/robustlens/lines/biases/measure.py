"""Seed 002's biases: shape bias, spectral (low/high-frequency) bias, critical band, and PGD.

Reference: P. Gavrikov, J. Lukasik, S. Jung, R. Geiger, B. Lorenz, J. Keuper, M. Keuper,
"Can Biases in ImageNet Models Explain Generalization?", CVPR 2024. The formulas live in
``robustlens.metrics`` (:func:`~robustlens.metrics.shape_bias.shape_bias`,
:func:`~robustlens.metrics.spectral.spectral_bias`,
:func:`~robustlens.metrics.critical_band.critical_band_or_none`,
:func:`~robustlens.metrics.classification.accuracy`); this measure only says which views it
needs and feeds the stored logits to those functions. Every view below is produced by the
engine in the same pass over decoded images as the views of every other measure of the study.

Views requested, by dataset role:

* ``cue_conflict``: ``clean``. Values ``shape_bias``, ``shape_fraction``, ``texture_fraction``,
  ``shape_bias_n`` (images with shape != texture). Dataset-space probabilities come from the
  class mapping (``mean`` of probabilities within a category for the 16 model-vs-human
  categories; identity for the synthetic world).
* ``id``: ``clean``; ``lowpass:C`` and ``highpass:C`` for every cutoff C; ``bandnoise:B:S`` for
  every band B and noise level S; and ``bandnoise:B0:0.0`` (B0 the lowest band), the noise-free
  low-contrast grayscale stimulus (row 0 of the critical band's accuracy table, the same for
  every band). Values ``low_freq_bias`` (LPP), ``high_freq_bias`` (HPP), ``spectral_bias``
  (``HPP / (LPP + HPP)``), ``cb_bandwidth_octaves``, ``cb_center_cpi`` (peak frequency),
  ``cb_peak_sensitivity`` (``2^(A - 4)``), ``cb_r_squared`` (the fit's quality; the RMS
  residual is in the artifacts), ``cb_clean_accuracy`` and ``cb_fit_ok`` (1 or 0). The
  definitions are the reference code's (``robustlens.metrics.spectral``,
  ``robustlens.metrics.critical_band``, ``robustlens.transforms.frequency``) and
  :meth:`BiasesMeasure.protocol` records them with the results. The critical band uses the
  absolute criterion (top-1 above 50 %) unless ``cb_criterion="relative"``. A critical band
  that is not defined gives NaN for the fitted numbers, ``cb_fit_ok = 0`` and the reason in
  the artifacts, with the reference's fitted numbers kept there when a fit was made: when the
  noise-free accuracy is not above the criterion, when it is not at least
  ``cb_min_margin_se`` (3) binomial standard errors ``sqrt(chance (1 - chance) / n)`` above
  chance, or when the Gaussian fit does not converge.
* ``adversarial``: ``clean`` and, with ``attack="pgd"`` (the default, seed 002's PGD-40),
  ``pgd:linf:EPS:STEPS:STEP`` (floats written with ``repr``, so the spec, and therefore the
  store key, is stable). Values ``pgd_accuracy``, ``clean_accuracy``; per sample
  ``pgd_prediction``, ``pgd_correct``. With ``attack="autoattack"`` (or both,
  ``attack=["pgd", "autoattack"]``), ``autoattack:linf:EPS:N:VERSION:SEED:TARGETS:STEPS``:
  AutoAttack through ``torchattacks`` (:func:`~robustlens.transforms.adversarial.autoattack`;
  RobustBench's ImageNet threat model by default, L-inf eps 4/255, ``standard`` version) on
  ``aa_images`` images evenly spaced over the dataset
  (:func:`~robustlens.transforms.adversarial.spread_mask`, so a dataset stored class by class
  gives every class its share). Values ``autoattack_accuracy`` (robust accuracy over those
  images), ``autoattack_clean_accuracy`` (clean accuracy over the same images) and
  ``autoattack_n``; per sample ``autoattack_attacked``, ``autoattack_prediction`` (-1 where
  not attacked) and ``autoattack_correct`` (1.0 or 0.0, NaN where not attacked); the attack,
  eps, images, version, seed and the ``torchattacks`` version in the artifacts and in
  :meth:`BiasesMeasure.protocol`. The engine still runs the model once on every image of the
  dataset for this view (the images not attacked pass through unchanged).

Bands and image size. Band b is level ``6 - b`` of the Laplacian pyramid of the noise (as in the
reference, whose pyramid of a 224 px image has exactly 7 levels), a fixed number of cycles per
*pixel*: centred at ``1.75 * 2**b * side / 224`` cycles per image
(``robustlens.transforms.frequency.band_centre_cpi``). Smaller images have fewer levels: at
20-39 px only bands 3..6 exist (centres 2, 4, 8, 16 cycles per image at 32 px), at 40-79 px
bands 2..6, at 80-159 px bands 1..6, from 160 px all 7. With ``bands=None`` the measure uses
every band that :func:`~robustlens.transforms.frequency.valid_bands` accepts for the dataset's
image size. The size is taken from the ``image_size`` option, else from
``DatasetInfo.tags["image_size"]`` (or an ``image_size`` attribute) when the study provides
it; when it is unknown the bands valid at 32 px (3..6, valid for every size >= 20 px) are used
and the peak frequency is reported in cycles per image *at the 224 px reference*
(``1.75 * 2**mu``), which the artifacts state in ``frequency_unit``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from robustlens._validation import check_number
from robustlens.errors import ConfigError, ValidationError
from robustlens.measure import DatasetContext, DatasetInfo, Measure, MeasureOutput
from robustlens.metrics.classification import accuracy
from robustlens.metrics.critical_band import CRITERIA, critical_band_or_none
from robustlens.metrics.shape_bias import shape_bias, shape_bias_per_category
from robustlens.metrics.spectral import BIAS_CUTOFFS, spectral_bias
from robustlens.transforms.adversarial import (
    AUTOATTACK,
    AUTOATTACK_ATTACKS,
    AUTOATTACK_VERSIONS,
    SEED002_PGD,
    load_torchattacks,
    spread_mask,
    torchattacks_version,
)
from robustlens.transforms.frequency import (
    CB_CONTRAST,
    CB_EPSILON,
    CB_MEAN,
    CRITICAL_BAND_SIGMAS,
    N_BANDS,
    SPECTRAL_CUTOFFS,
    valid_bands,
)

__all__ = ["ATTACKS", "PARTS", "BiasesMeasure"]

#: the four parts of the measure; ``parts=`` selects a subset (``"pgd"``: the adversarial part,
#: whichever ``attack`` it runs)
PARTS = ("shape", "spectral", "critical_band", "pgd")
#: the attacks of the adversarial part (``attack=``)
ATTACKS = ("pgd", "autoattack")
_FALLBACK_SIZE = 32  # bands valid here are valid at every size >= 20 px
_REFERENCE_SIDE = 224  # the side at which band b is centred at 1.75 * 2**b cycles per image
#: the definitions the numbers follow (recorded by :meth:`BiasesMeasure.protocol`)
DEFINITIONS = {
    "spectral": (
        "seed 002 eval_spectral.py: per channel fftshift(fft2(x)) of [0, 1] pixels; low-pass c "
        "keeps the slice [centre - r, centre + r) on each axis, r = int(c * (side // 2)); "
        "high-pass c removes that square for 1 - c; real part of ifft2, clipped to [0, 1]. "
        "LPP / HPP = mean low / high-pass accuracy ratio to clean accuracy (not clipped) over "
        "bias_cutoffs; spectral bias = HPP / (LPP + HPP)"
    ),
    "critical_band_stimulus": (
        "Subramanian et al. solomon_filter as run by seed 002 eval_criticalband.py: PIL "
        f"grayscale, (g - mean g) * {CB_CONTRAST} + {CB_MEAN}; Gaussian noise of SD sigma "
        "reduced to Laplacian-pyramid level 6 - band (pyrtools binom5, reflect1), its RMS "
        "equated to that of level 0 of the same noise; out-of-range pixels shift the image "
        f"pixel to {CB_EPSILON} / {1 - CB_EPSILON} (noise redrawn only where that fails), "
        "never clipped"
    ),
    "critical_band_fit": (
        "Subramanian et al. analysis.py: threshold = noise steps, from the highest noise down, "
        "before top-1 is above the criterion (at most 4); Gaussian A exp(-(b - mu)^2 / 2 s^2) "
        "over band index, p0 (1, 0, 1), A in [0, 4], always fitted; bandwidth 2 sqrt(ln 4) |s| "
        "octaves, peak frequency 1.75 * 2^mu * side / 224 cycles per image, peak noise "
        "sensitivity 2^(A - 4); R^2 and RMS residual reported"
    ),
}
_NAN = float("nan")


def _floats(values: Iterable[Any], name: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"biases.{name}: expected a list of numbers, got {values!r}") from exc
    if not out:
        raise ConfigError(f"biases.{name}: expected at least one value, got none")
    return out


def _number(value: Any, name: str, integer: bool = False) -> float:
    return check_number(value, f"biases.{name}", integer=integer, error=ConfigError)


def _image_size(info: DatasetInfo, option: int | None) -> int | None:
    if option is not None:
        return option
    size = (info.tags or {}).get("image_size", getattr(info, "image_size", None))
    return int(size) if size is not None else None


class BiasesMeasure(Measure):
    """Shape, spectral and critical-band biases and PGD robust accuracy (seed 002).

    Args:
        pgd_eps: L-inf radius in pixel units of [0, 1] (seed 002: 0.5/255).
        pgd_steps: PGD iterations (seed 002: 40).
        pgd_step: absolute PGD step (seed 002: 2/255).
        cutoffs: FFT cutoffs of the low- and high-pass views (default ``SPECTRAL_CUTOFFS``,
            0.01, 0.1, ..., 0.9, 0.99); must contain ``bias_cutoffs``.
        bias_cutoffs: cutoffs averaged into the low/high-frequency bias (0.1 .. 0.5).
        bands: noise bands (default: every band of 0..6 valid at the dataset's image size).
        sigmas: band-noise standard deviations (default ``CRITICAL_BAND_SIGMAS``).
        image_size: image side in pixels of the ``id`` datasets, when the study does not
            provide it (decides the default bands and the centre-frequency unit).
        parts: which of ``"shape"``, ``"spectral"``, ``"critical_band"``, ``"pgd"`` to run
            (e.g. leave out ``"pgd"`` on a large study).
        cb_criterion: ``"absolute"`` (default, the reference: top-1 above ``cb_level``) or
            ``"relative"`` (halfway between the noise-free accuracy and chance; for models whose
            noise-free accuracy on the low-contrast grayscale stimulus is below 50 %, for which
            the absolute criterion defines no critical band; not comparable with published
            numbers).
        cb_level: the absolute criterion (0.5).
        cb_min_margin_se: the critical band is reported as undefined unless the noise-free
            low-contrast grayscale accuracy exceeds chance by at least this many binomial
            standard errors ``sqrt(chance (1 - chance) / n)`` (a criterion near chance is noise,
            which matters for the relative criterion). 0 disables the check.
        attack: the attack of the adversarial part: ``"pgd"`` (default, seed 002's PGD-40),
            ``"autoattack"`` (AutoAttack through ``torchattacks``, ``pip install
            "robustlens[attacks]"``) or a list of both.
        aa_eps: AutoAttack's L-inf radius in pixel units of [0, 1] (RobustBench's ImageNet:
            4/255).
        aa_images: images attacked, evenly spaced over the dataset (RobustBench evaluates 5000
            ImageNet val images); ``None``: all.
        aa_version: ``torchattacks.AutoAttack``'s version: ``"standard"`` (APGD-CE, APGD-T,
            FAB-T, Square), ``"plus"`` or ``"rand"``.
        aa_seed: the attacks' random seed.
        aa_target_classes: target classes of APGD-T and FAB-T (the reference AutoAttack: 9;
            ``None``: ``torchattacks``' ``n_classes - 1``, about 100 times the work on ImageNet).
        aa_steps: iterations of APGD and FAB (``None``: ``torchattacks``' 10; the reference
            AutoAttack runs 100).
    """

    name = "biases"
    description = "shape bias, low/high-frequency bias, critical band, PGD robust accuracy"
    paper = (
        "Gavrikov et al., Can Biases in ImageNet Models Explain Generalization?, CVPR "
        "2024 (shape bias: Geirhos et al., ICLR 2019; critical band: Subramanian et al., "
        "NeurIPS 2023)"
    )

    def __init__(
        self,
        pgd_eps: float = SEED002_PGD["eps"],
        pgd_steps: int = SEED002_PGD["steps"],
        pgd_step: float = SEED002_PGD["step"],
        cutoffs: Sequence[float] = SPECTRAL_CUTOFFS,
        bias_cutoffs: Sequence[float] = BIAS_CUTOFFS,
        bands: Sequence[int] | None = None,
        sigmas: Sequence[float] = CRITICAL_BAND_SIGMAS,
        image_size: int | None = None,
        parts: Sequence[str] = PARTS,
        cb_criterion: str = "absolute",
        cb_level: float = 0.5,
        cb_min_margin_se: float = 3.0,
        attack: str | Sequence[str] = "pgd",
        aa_eps: float = AUTOATTACK["eps"],
        aa_images: int | None = AUTOATTACK["n_images"],
        aa_version: str = AUTOATTACK["version"],
        aa_seed: int = AUTOATTACK["seed"],
        aa_target_classes: int | None = AUTOATTACK["target_classes"],
        aa_steps: int | None = None,
    ) -> None:
        self.pgd_eps = _number(pgd_eps, "pgd_eps")
        self.pgd_steps = int(_number(pgd_steps, "pgd_steps", integer=True))
        self.pgd_step = _number(pgd_step, "pgd_step")
        self.cutoffs = tuple(sorted(set(_floats(cutoffs, "cutoffs"))))
        bad = [c for c in self.cutoffs if not 0 < c <= 1]
        if bad:
            raise ConfigError(f"biases.cutoffs: expected values in (0, 1], got {bad}")
        self.bias_cutoffs = _floats(bias_cutoffs, "bias_cutoffs")
        have = {round(c, 6) for c in self.cutoffs}
        missing = [c for c in self.bias_cutoffs if round(c, 6) not in have]
        if missing:
            raise ConfigError(
                f"biases.cutoffs: the low/high-frequency bias averages the cutoffs "
                f"{list(self.bias_cutoffs)}, but {missing} are not among the cutoffs "
                f"{list(self.cutoffs)}; add them (or set bias_cutoffs)"
            )
        self.sigmas = tuple(sorted(set(_floats(sigmas, "sigmas"))))
        if self.sigmas[0] <= 0:
            raise ConfigError(f"biases.sigmas: expected positive noise levels, got {sigmas!r}")
        if bands is not None:
            raw = list(bands)
            if not raw or any(
                isinstance(b, bool) or not isinstance(b, int | np.integer) or b < 0 for b in raw
            ):
                raise ConfigError(f"biases.bands: expected non-negative integers, got {bands!r}")
            bands = tuple(sorted({int(b) for b in raw}))
        self.bands = bands
        if image_size is not None:
            image_size = int(_number(image_size, "image_size", integer=True))
            if image_size < 1:
                raise ConfigError(f"biases.image_size: expected a positive size, got {image_size}")
        self.image_size = image_size
        unknown = [p for p in parts if p not in PARTS]
        if unknown or not parts:
            raise ConfigError(f"biases.parts: expected a subset of {list(PARTS)}, got {parts!r}")
        self.parts = tuple(parts)
        if cb_criterion not in CRITERIA:
            raise ConfigError(
                f"biases.cb_criterion: expected one of {list(CRITERIA)}, got {cb_criterion!r}"
            )
        self.cb_criterion = cb_criterion
        self.cb_level = _number(cb_level, "cb_level")
        if not 0 <= self.cb_level <= 1:
            raise ConfigError(f"biases.cb_level: expected an accuracy in [0, 1], got {cb_level!r}")
        self.cb_min_margin_se = _number(cb_min_margin_se, "cb_min_margin_se")
        attacks = [attack] if isinstance(attack, str) else list(attack)
        if not attacks or any(a not in ATTACKS for a in attacks):
            raise ConfigError(
                f"biases.attack: expected one of {list(ATTACKS)} or a list of them, got {attack!r}"
            )
        self.attack = tuple(dict.fromkeys(attacks))
        self.aa_eps = _number(aa_eps, "aa_eps")
        self.aa_images = _count(aa_images, "aa_images")
        if aa_version not in AUTOATTACK_VERSIONS:
            raise ConfigError(
                f"biases.aa_version: expected one of {list(AUTOATTACK_VERSIONS)}, got "
                f"{aa_version!r}"
            )
        self.aa_version = aa_version
        self.aa_seed = int(_number(aa_seed, "aa_seed", integer=True))
        self.aa_target_classes = _count(aa_target_classes, "aa_target_classes")
        self.aa_steps = _count(aa_steps, "aa_steps")
        if "autoattack" in self.attack and "pgd" in self.parts:
            try:
                load_torchattacks()
            except ImportError as exc:
                raise ConfigError(f"biases.attack: autoattack: {exc}") from exc

    def protocol(self) -> dict[str, Any]:
        """Name, paper, every parameter, the definitions the numbers follow and, for the
        adversarial part, each attack with its threat model."""
        return {
            **super().protocol(),
            "definitions": dict(DEFINITIONS),
            "attacks": self.attack_protocol(),
        }

    def attack_protocol(self) -> dict[str, dict[str, Any]]:
        """The attacks of the adversarial part: what each runs, at which threat model."""
        out: dict[str, dict[str, Any]] = {}
        if "pgd" in self.attack:
            out["pgd"] = {
                "attack": "pgd",
                "norm": "linf",
                "eps": self.pgd_eps,
                "steps": self.pgd_steps,
                "step": self.pgd_step,
                "random_start": True,
                "view": self.pgd_spec,
                "reference": "seed 002 eval_imagenet_adv.py (foolbox LinfPGD)",
            }
        if "autoattack" in self.attack:
            out["autoattack"] = {
                "attack": "autoattack",
                "implementation": "torchattacks.AutoAttack",
                "torchattacks": torchattacks_version(),
                "norm": "linf",
                "eps": self.aa_eps,
                "n_images": self.aa_images,
                "selection": "n images evenly spaced over the dataset (spread_mask)",
                "version": self.aa_version,
                "attacks": list(AUTOATTACK_ATTACKS[self.aa_version]),
                "seed": self.aa_seed,
                "target_classes": self.aa_target_classes or "n_classes - 1 (torchattacks)",
                "steps": self.aa_steps or "torchattacks' default (10 in 3.5)",
                "view": self.autoattack_spec,
                "reference": "Croce and Hein, ICML 2020; RobustBench ImageNet: L-inf 4/255, "
                "5000 val images, standard version (9 target classes, 100 steps)",
            }
        return out

    # ------------------------------------------------------------------ view specs
    @property
    def pgd_spec(self) -> str:
        """The PGD view spec, e.g. ``pgd:linf:0.00196078431372549:40:0.00784313725490196``."""
        return f"pgd:linf:{self.pgd_eps!r}:{self.pgd_steps}:{self.pgd_step!r}"

    @property
    def autoattack_spec(self) -> str:
        """The AutoAttack view spec, e.g.
        ``autoattack:linf:0.01568627450980392:5000:standard:0:9:default``."""
        n = "all" if self.aa_images is None else self.aa_images
        targets = "all" if self.aa_target_classes is None else self.aa_target_classes
        steps = "default" if self.aa_steps is None else self.aa_steps
        return (
            f"autoattack:linf:{self.aa_eps!r}:{n}:{self.aa_version}:{self.aa_seed}:{targets}:"
            f"{steps}"
        )

    def attack_specs(self) -> dict[str, str]:
        """``{attack: view spec}`` of the adversarial part."""
        specs = {"pgd": self.pgd_spec, "autoattack": self.autoattack_spec}
        return {a: specs[a] for a in self.attack}

    def spectral_specs(self) -> dict[str, tuple[str, ...]]:
        """``{"low": lowpass specs, "high": highpass specs}`` in cutoff order."""
        return {
            "low": tuple(f"lowpass:{c!r}" for c in self.cutoffs),
            "high": tuple(f"highpass:{c!r}" for c in self.cutoffs),
        }

    def bands_for(self, info: DatasetInfo) -> tuple[int, ...]:
        """The noise bands used on ``info`` (see the module docstring)."""
        size = _image_size(info, self.image_size)
        valid = valid_bands(size or _FALLBACK_SIZE, n_bands=N_BANDS)
        if self.bands is None:
            return valid
        if size is not None:
            bad = [b for b in self.bands if b not in valid]
            if bad:
                raise ConfigError(
                    f"biases.bands: bands {bad} contain no frequency of the {size} px images of "
                    f"{info.name!r}; valid bands at this size: {list(valid)}"
                )
        return self.bands

    @staticmethod
    def band_spec(band: int, sigma: float) -> str:
        return f"bandnoise:{int(band)}:{float(sigma)!r}"

    def critical_band_specs(self, info: DatasetInfo) -> tuple[str, tuple[tuple[str, ...], ...]]:
        """(noise-free baseline spec, specs per band x sigma)."""
        bands = self.bands_for(info)
        baseline = self.band_spec(bands[0], 0.0)
        return baseline, tuple(tuple(self.band_spec(b, s) for s in self.sigmas) for b in bands)

    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        role = dataset.role
        if role == "cue_conflict" and "shape" in self.parts:
            return {"clean": False}
        if role == "id" and ("spectral" in self.parts or "critical_band" in self.parts):
            views = {"clean": False}
            if "spectral" in self.parts:
                for specs in self.spectral_specs().values():
                    views.update(dict.fromkeys(specs, False))
            if "critical_band" in self.parts:
                baseline, table = self.critical_band_specs(dataset)
                views[baseline] = False
                for row in table:
                    views.update(dict.fromkeys(row, False))
            return views
        if role == "adversarial" and "pgd" in self.parts:
            return {"clean": False, **dict.fromkeys(self.attack_specs().values(), False)}
        return {}

    # ------------------------------------------------------------------ compute
    def compute_dataset(self, data: DatasetContext, out: MeasureOutput) -> None:
        role = data.info.role
        if role == "cue_conflict":
            self._shape(data, out)
        elif role == "id":
            if "spectral" in self.parts:
                self._spectral(data, out)
            if "critical_band" in self.parts:
                self._critical_band(data, out)
        elif role == "adversarial":
            if "pgd" in self.attack:
                self._pgd(data, out)
            if "autoattack" in self.attack:
                self._autoattack(data, out)

    @staticmethod
    def _accuracy(data: DatasetContext, view: str) -> float:
        labels = data.arrays.labels()
        if len(labels) == 0:
            return _NAN
        probs, _ = data.predictions(view)
        return accuracy(probs, labels)

    def _shape(self, data: DatasetContext, out: MeasureOutput) -> None:
        info = data.info
        try:
            texture = data.arrays.extra("texture_label")
        except KeyError as exc:
            raise ValidationError(
                f"dataset {info.name!r} has role 'cue_conflict' but no 'texture_label' per "
                "sample; cue-conflict datasets must carry the texture category of each image "
                "(the synthetic world's cue_conflict split and the cue_conflict layout do)"
            ) from exc
        shape = data.arrays.labels()
        probs, pred = data.predictions("clean")
        r = shape_bias(probs, shape, texture)
        for key in ("shape_bias", "shape_fraction", "texture_fraction"):
            out.values[(info.name, key)] = float(r[key])
        out.values[(info.name, "shape_bias_n")] = float(r["n_used"])
        per_cat = shape_bias_per_category(probs, shape, texture)
        classes = list(info.classes) or [str(k) for k in per_cat]
        out.artifacts.setdefault("shape_bias", {})[info.name] = {
            "per_category": {classes[int(k)]: float(v) for k, v in per_cat.items()},
            "n_used": int(r["n_used"]),
            "n_shape": int(r["n_shape"]),
            "n_texture": int(r["n_texture"]),
            "reason": r.get("reason"),
        }
        used = shape != texture
        out.per_sample[info.name] = {
            "texture_label": np.asarray(texture, dtype=np.int64),
            "shape_hit": (pred == shape) & used,
            "texture_hit": (pred == texture) & used,
        }

    def _spectral(self, data: DatasetContext, out: MeasureOutput) -> None:
        specs = self.spectral_specs()
        clean = self._accuracy(data, "clean")
        low, high = (
            {c: self._accuracy(data, s) for c, s in zip(self.cutoffs, specs[k], strict=True)}
            for k in ("low", "high")
        )
        art: dict[str, Any] = {
            "cutoffs": list(self.cutoffs),
            "bias_cutoffs": list(self.bias_cutoffs),
            "clean_accuracy": clean,
            "low_accuracy": [low[c] for c in self.cutoffs],
            "high_accuracy": [high[c] for c in self.cutoffs],
            "reason": None,
        }
        if not (clean > 0):
            art["reason"] = (
                f"clean accuracy is {clean}: accuracy ratios to clean accuracy are undefined"
            )
            art["low_curve"] = art["high_curve"] = [_NAN] * len(self.cutoffs)
            lo = hi = _NAN
        else:
            r = spectral_bias(low, high, clean, cutoffs=self.bias_cutoffs)
            art["low_curve"] = list(r["low_curve"].values())
            art["high_curve"] = list(r["high_curve"].values())
            lo, hi = r["low_freq_bias"], r["high_freq_bias"]
        out.values[(data.name, "low_freq_bias")] = float(lo)
        out.values[(data.name, "high_freq_bias")] = float(hi)
        out.values[(data.name, "spectral_bias")] = float(hi / (lo + hi)) if lo + hi > 0 else _NAN
        out.artifacts.setdefault("spectral", {})[data.name] = art

    def _critical_band(self, data: DatasetContext, out: MeasureOutput) -> None:
        info = data.info
        bands = self.bands_for(info)
        baseline, table_specs = self.critical_band_specs(info)
        size = _image_size(info, self.image_size)
        if size is not None:
            unit = f"cycles per image ({size} px)"
        else:
            unit = "cycles per image at the 224 px reference (image size unknown)"
        clean = self._accuracy(data, baseline)
        # rows: noise SD 0 (the noise-free stimulus, the same in every band), then each sigma
        per_band = [[self._accuracy(data, spec) for spec in row] for row in table_specs]
        table = [[clean] * len(bands)] + [list(col) for col in zip(*per_band, strict=True)]
        chance, n = info.chance, len(data.arrays.labels())
        res = critical_band_or_none(
            table,
            bands,
            criterion=self.cb_criterion,
            level=self.cb_level,
            chance=chance,
            side=size or _REFERENCE_SIDE,
        )
        # a criterion is only meaningful when the noise-free stimulus is clearly above chance:
        # require clean - chance >= k binomial standard errors at chance
        needed = chance + self.cb_min_margin_se * math.sqrt(chance * (1 - chance) / max(n, 1))
        if res.ok and not clean >= needed:
            res = dataclasses.replace(
                res,
                ok=False,
                reason=(
                    f"the noise-free low-contrast grayscale accuracy {clean:.4g} is not clearly "
                    f"above chance {chance:.4g} (needs >= {needed:.4g}: chance + "
                    f"{self.cb_min_margin_se:g} binomial standard errors with n={n}); the "
                    "critical band is undefined for this model on these images"
                ),
            )
        values = {
            "cb_bandwidth_octaves": res.bandwidth_octaves,
            "cb_center_cpi": res.centre_cpi,
            "cb_peak_sensitivity": res.peak_sensitivity,
            "cb_r_squared": res.r_squared,
        }
        for key, v in values.items():
            out.values[(info.name, key)] = float(v) if res.ok else _NAN
        out.values[(info.name, "cb_fit_ok")] = 1.0 if res.ok else 0.0
        out.values[(info.name, "cb_clean_accuracy")] = float(clean)
        art = res.as_dict()
        art.update(
            bands=list(bands),
            sigmas=[0.0, *self.sigmas],
            acc_table=table,
            chance=chance,
            n=n,
            baseline_view=baseline,
            frequency_unit=unit,
            image_size=size,
        )
        out.artifacts.setdefault("critical_band", {})[info.name] = art

    def _pgd(self, data: DatasetContext, out: MeasureOutput) -> None:
        clean = self._accuracy(data, "clean")
        robust = self._accuracy(data, self.pgd_spec)
        out.values[(data.name, "pgd_accuracy")] = robust
        out.values[(data.name, "clean_accuracy")] = clean
        out.artifacts.setdefault("pgd", {})[data.name] = {
            "view": self.pgd_spec,
            "eps": self.pgd_eps,
            "steps": self.pgd_steps,
            "step": self.pgd_step,
            "norm": "linf",
            "attack": "pgd",
            "clean_accuracy": clean,
            "pgd_accuracy": robust,
        }
        labels = data.arrays.labels()
        if len(labels):
            _, pred = data.predictions(self.pgd_spec)
            out.per_sample[data.name] = {
                "pgd_prediction": pred.astype(np.int64),
                "pgd_correct": pred == labels,
            }

    def _autoattack(self, data: DatasetContext, out: MeasureOutput) -> None:
        spec = self.autoattack_spec
        labels = data.arrays.labels()
        n_rows = len(labels)
        index = data.arrays.index() if n_rows else np.zeros(0, np.int64)
        total = _dataset_length(data.info, index)
        attacked = spread_mask(index, total, self.aa_images) if n_rows else np.zeros(0, bool)
        n = int(attacked.sum())
        if n:
            _, clean_pred = data.predictions("clean")
            _, pred = data.predictions(spec)
            hit = pred == labels
            robust = float(hit[attacked].mean())
            clean = float((clean_pred == labels)[attacked].mean())
        else:
            pred, hit = np.full(n_rows, -1), np.zeros(n_rows, bool)
            robust = clean = _NAN
        out.values[(data.name, "autoattack_accuracy")] = robust
        out.values[(data.name, "autoattack_clean_accuracy")] = clean
        out.values[(data.name, "autoattack_n")] = float(n)
        out.artifacts.setdefault("autoattack", {})[data.name] = {
            **self.attack_protocol()["autoattack"],
            "n_images": n,
            "n_requested": self.aa_images,
            "dataset_size": total,
            "clean_accuracy": clean,
            "autoattack_accuracy": robust,
            "indices": index[attacked].astype(int).tolist(),
        }
        if n_rows:
            out.per_sample.setdefault(data.name, {}).update(
                {
                    "autoattack_attacked": attacked,
                    "autoattack_prediction": np.where(attacked, pred, -1).astype(np.int64),
                    "autoattack_correct": np.where(attacked, hit.astype(np.float64), _NAN),
                }
            )


def _count(value: Any, name: str) -> int | None:
    """A positive whole number option, or ``None``."""
    if value is None:
        return None
    v = int(_number(value, name, integer=True))
    if v < 1:
        raise ConfigError(f"biases.{name}: expected a positive integer or null, got {value!r}")
    return v


def _dataset_length(info: DatasetInfo, index: np.ndarray) -> int:
    """The dataset's length, which the AutoAttack view spread its images over.

    ``DatasetInfo.size`` where the study records it; else one past the last stored sample
    (the same unless the dataset's last images failed to decode).
    """
    size = getattr(info, "size", None)
    if isinstance(size, int | np.integer) and size > 0:
        return int(size)
    return int(index.max()) + 1 if len(index) else 0
