"""Times in the records a user's work leaves (corrections and their history, sessions, kept edits).

Written as ISO 8601 to the second with the local UTC offset ("2026-11-29T13:05:09+01:00"): a record read in another
time zone, by a colleague abroad or after a clock change (the autumn hour happens twice), still names one instant.
Records written before the offset was kept (up to session 41) carry none: read as the local time they were written in.
Compared as instants, never as text: "…09+01:00" and "…09" and a kept edit's "… 09" name different instants or the
same one whatever their strings' order.
"""
from __future__ import annotations

from datetime import datetime

UNKNOWN = float("-inf")  # a missing or unreadable time: earlier than any (sorts first, is never "later work")


def now_stamp() -> str:
    """Now, as the records write it."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def instant(stamp: object) -> float:
    """Seconds since the epoch of a record's time (``UNKNOWN`` for none or an unreadable one: records are data)."""
    if not isinstance(stamp, str):
        return UNKNOWN
    try:
        when = datetime.fromisoformat(stamp.strip().replace(" ", "T", 1))  # kept edits wrote a space before
    except ValueError:
        return UNKNOWN
    try:
        return (when if when.tzinfo is not None else when.astimezone()).timestamp()
    except (OverflowError, OSError, ValueError):  # year 1 or 9999 with an offset
        return UNKNOWN


def shown(stamp: object) -> str:
    """A record's time as a line shows it, in the reader's time zone with its offset: "2026-11-29 13:05:09 +01:00" (a
    colleague's record written in Los Angeles read "05:03:23 -08:00" beside "14:02:57 +01:00": verification of
    session 42). A record without an offset as written (local time); "?" for none; unreadable text as it is."""
    if not isinstance(stamp, str) or not stamp:
        return "?"
    try:
        when = datetime.fromisoformat(stamp.strip().replace(" ", "T", 1))
    except ValueError:
        return stamp
    if when.tzinfo is None:
        return when.isoformat(sep=" ", timespec="seconds")
    try:
        text = when.astimezone().isoformat(sep=" ", timespec="seconds")
    except (OverflowError, OSError, ValueError):
        text = when.isoformat(sep=" ", timespec="seconds")
    return f"{text[:-6]} {text[-6:]}"


def stamp_of(seconds: float) -> str:
    """A time in seconds since the epoch (a file's date) as the records write times."""
    return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")
