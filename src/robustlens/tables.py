"""Tables a research line shows: one object, rendered to HTML (report) or to the terminal.

A line builds a :class:`Table` once from its analysis; the report section calls
:meth:`Table.to_html` and the command line :meth:`Table.to_rich`, so the two never drift
apart. Cells are text or numbers; numbers are formatted with :mod:`robustlens.formatting`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from rich.table import Table as RichTable

from robustlens.formatting import esc, is_number, number

__all__ = ["Table"]

# text that reads as a number: signed values, ranges, p-values and the missing-value marks
_NUMBER_TEXT = re.compile(r"^\s*([+\-−]?\d|[<>] ?\d|n/a$|-$|–$|\[)")


@dataclass
class Table:
    """A titled table of text and numbers.

    Attributes:
        title: shown above the table.
        columns: column headers.
        rows: one sequence of cells per row; a cell is text, a number or ``None`` (``n/a``).
        digits: decimals of numeric cells: one number for every column, or
            ``{column header: decimals}`` for the columns that differ from 3.
        caption: a note shown below the table.
        first_column_bold: the first column names the row (model, predictor, ...).

    Example:
        >>> t = Table("EI", ["model", "ei"], [["a", 0.51234], ["b", None]])
        >>> t.cells()
        [['a', '0.512'], ['b', 'n/a']]
    """

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]] = field(default_factory=list)
    digits: int | Mapping[str, int] = 3
    caption: str = ""
    first_column_bold: bool = True

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.title!r}: row {i} has {len(row)} cells for "
                    f"{len(self.columns)} columns"
                )

    def _digits(self, column: str) -> int:
        if isinstance(self.digits, Mapping):
            return int(self.digits.get(column, 3))
        return self.digits

    def _cell(self, v: Any, digits: int) -> str:
        if isinstance(v, str):
            return v
        if (
            v is None
            or isinstance(v, bool)
            or (not isinstance(v, int | float) and not is_number(v))
        ):
            return "n/a" if v is None else str(v)
        if isinstance(v, int):
            return f"{v:,}"
        return number(v, digits)

    def cells(self) -> list[list[str]]:
        """Every cell as the text both renderers show."""
        digits = [self._digits(c) for c in self.columns]
        return [[self._cell(v, d) for v, d in zip(row, digits, strict=True)] for row in self.rows]

    def _numeric_columns(self) -> list[bool]:
        """Columns of numbers (or number text such as ``+0.42* / +0.40``): right-aligned."""
        return [
            bool(self.rows)
            and all(not isinstance(r[j], str) or _NUMBER_TEXT.match(r[j]) for r in self.rows)
            for j in range(len(self.columns))
        ]

    def to_html(self, table_id: str | None = None, heading: str = "h4") -> str:
        """The table as an HTML fragment (title, ``<table class="data">``, caption)."""
        numeric = self._numeric_columns()
        tid = f' id="{esc(table_id)}"' if table_id else ""
        head = "".join(f"<th>{esc(c)}</th>" for c in self.columns)
        body = []
        for row in self.cells():
            tds = "".join(
                f"<td class='num'>{esc(c)}</td>" if numeric[j] else f"<td>{esc(c)}</td>"
                for j, c in enumerate(row)
            )
            body.append(f"<tr>{tds}</tr>")
        title = f"<{heading}>{esc(self.title)}</{heading}>" if self.title else ""
        caption = f"<p class='note'>{esc(self.caption)}</p>" if self.caption else ""
        # the scroll box keeps a wide table from widening the page
        return (
            f"{title}<div class='table-scroll'><table class='data'{tid}><thead><tr>{head}"
            f"</tr></thead><tbody>{''.join(body)}</tbody></table></div>{caption}"
        )

    def to_rich(self) -> RichTable:
        """The table as a :class:`rich.table.Table` for the terminal."""
        numeric = self._numeric_columns()
        t = RichTable(title=self.title or None, caption=self.caption or None)
        for j, c in enumerate(self.columns):
            t.add_column(
                c,
                justify="right" if numeric[j] else "left",
                style="bold" if j == 0 and self.first_column_bold else None,
                overflow="fold",
            )
        for row in self.cells():
            t.add_row(*row)
        return t

    def to_json(self) -> str:
        """The table as JSON text; :meth:`from_json` reads back a table that shows the same.

        Cells are kept as text, ``None``, booleans, integers and floats (finite numbers of
        other types, such as numpy's, as floats; NaN and infinities as JSON's ``NaN`` and
        ``Infinity``, which :mod:`json` reads back). A non-finite number of another type is
        kept as the text it is shown as, so its column may read as text (left-aligned)."""
        return json.dumps(
            {
                "title": self.title,
                "columns": list(self.columns),
                "rows": [[_plain_cell(v) for v in row] for row in self.rows],
                "digits": dict(self.digits) if isinstance(self.digits, Mapping) else self.digits,
                "caption": self.caption,
                "first_column_bold": self.first_column_bold,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Table:
        """The table :meth:`to_json` wrote."""
        return cls(**json.loads(text))

    def to_frame(self) -> pd.DataFrame:
        """The table as a pandas DataFrame of its raw cells."""
        return pd.DataFrame([list(r) for r in self.rows], columns=list(self.columns))


def _plain_cell(v: Any) -> Any:
    """A cell as a JSON value that :meth:`Table.cells` shows as it shows ``v``: numbers of
    other types (numpy's) as floats, which :func:`~robustlens.formatting.number` formats as
    it formats them; anything else as its text, which is how it is shown."""
    if v is None or isinstance(v, str | bool | int | float):
        return v
    if is_number(v):
        return float(v)
    return str(v)
