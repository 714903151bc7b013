"""Research lines shipped with robustlens, one package each.

A line package holds everything of one line of work: its measures (the views it requests and
the numbers it computes from stored arrays), its cross-model analysis, its report sections and
its command-line commands. It exports one :class:`robustlens.measure.Line` named ``LINE`` and is
registered as an entry point in the ``robustlens.lines`` group; the core finds it there. Adding
a line is adding a folder (or a separate package with such an entry point).
"""
