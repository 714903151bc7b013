"""CLI command groups beyond the core ones; each module defines ``register(app)``."""

COMMAND_MODULES = (
    "invariance",
    "clustering",
    "biases",
    "spurious",
    "robustness",
    "report",
    "pretrained",
)
