"""The names of the causes a zoo recipe plants, as recorded in a model's config.

A zoo model's config holds them under ``"planted"`` (:meth:`robustlens.models.zoo.ZooMember.
planted` writes them; the validity line reads them). This module imports nothing, so that
readers of configs need not import torch.
"""

#: the planted causes recorded in a member's config under ``"planted"`` (these names exactly)
PLANTED_KEYS = (
    "mark_rate",
    "texture_randomization",
    "rotation_augmentation",
    "grayscale_augmentation",
    "corruption_augmentation",
    "generated_fraction",
    "epochs",
    "width",
    "arch",
)
