"""Formatting of numbers and names for the report and the terminal: one module, one style.

Every table cell, figure label and summary line formats through these functions, so a
missing value reads the same everywhere (``n/a``) and a p-value is always written one way.
"""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = [
    "duration",
    "esc",
    "is_number",
    "number",
    "p_eq",
    "p_value",
    "short",
    "signed",
    "significant",
]

NA = "n/a"


def esc(x: Any) -> str:
    """HTML-escaped text of ``x``."""
    return html.escape(str(x))


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def is_number(v: Any) -> bool:
    """True for a finite number (or something ``float`` reads as one)."""
    return _finite(v) is not None


def number(v: Any, digits: int = 3, na: str = NA) -> str:
    """``v`` with ``digits`` decimals (``-0.000`` written ``0.000``); ``na`` if not a number.

    Example:
        >>> number(0.12345), number(-0.00001, 2), number(None), number(float("nan"), na="-")
        ('0.123', '0.00', 'n/a', '-')
    """
    f = _finite(v)
    if f is None:
        return na
    return f"{round(f, digits) + 0.0:.{digits}f}"


def significant(v: Any, digits: int = 3, na: str = NA) -> str:
    """``v`` with ``digits`` significant digits (for values spanning orders of magnitude).

    Example:
        >>> significant(4.0), significant(0.000012345, 2), significant(1234567), significant(None)
        ('4', '1.2e-05', '1.23e+06', 'n/a')
    """
    f = _finite(v)
    if f is None:
        return na
    return format(f, f".{digits}g")


def signed(v: Any, digits: int = 2, significant: Any = False, na: str = NA) -> str:
    """``+0.42`` style, with ``*`` when ``significant``.

    Example:
        >>> signed(0.4213, significant=True), signed(-0.1), signed(-1e-17), signed("x", na="-")
        ('+0.42*', '-0.10', '+0.00', '-')
    """
    f = _finite(v)
    if f is None:
        return na
    f = round(f, digits) + 0.0  # -1e-17 is written +0.00, not -0.00
    return f"{f:+.{digits}f}{'*' if bool(significant) else ''}"


def p_value(p: Any) -> str:
    """A p-value: ``< 0.001`` below one in a thousand, three decimals above.

    Example:
        >>> p_value(0.0004), p_value(0.0123), p_value(None)
        ('< 0.001', '0.012', 'n/a')
    """
    f = _finite(p)
    if f is None:
        return NA
    return "< 0.001" if f < 0.001 else f"{f:.3f}"


def p_eq(p: Any) -> str:
    """``p = 0.012`` or ``p < 0.001``."""
    t = p_value(p)
    return f"p {t}" if t.startswith("<") else f"p = {t}"


def duration(seconds: float) -> str:
    """Seconds below two minutes, minutes above.

    Example:
        >>> duration(12.34), duration(600)
        ('12.3 s', '10.0 min')
    """
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def short(name: str, strip: str = "world/") -> str:
    """A dataset name without the synthetic world's prefix."""
    return str(name).replace(strip, "") if strip else str(name)
