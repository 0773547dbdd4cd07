"""CSV written for people: the manifest of an export, `unetv2 corrections --csv`."""
from __future__ import annotations

import csv
import io
from typing import Iterable

# A cell a spreadsheet takes for a formula: a file or annotator name such as "=HYPERLINK(...)" would run as one in the
# statistician's spreadsheet (cold review of session 41). Such text gets a leading apostrophe, as OWASP advises.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def csv_text(fields: list[str], rows: Iterable[dict]) -> str:
    """``rows`` as CSV (a header, then one line per row), text cells made safe for spreadsheets. Not for files this
    project reads back (``summary.csv``): it changes the names it guards."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: spreadsheet_safe(value) for key, value in row.items()} for row in rows)
    return out.getvalue()
