"""Core commands that are not part of a research line; each module defines ``register(app)``.

Research lines add their own commands through their :class:`robustlens.measure.Line`.
"""
