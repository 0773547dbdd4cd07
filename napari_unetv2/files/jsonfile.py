"""Reading the JSON files the plugin keeps (provenance, store.json, session.json, checkpoint configs, resume state)."""
from __future__ import annotations

import json
from pathlib import Path


def read_json(path: Path) -> object:
    """The parsed contents of a UTF-8 JSON file. Raises ``json.JSONDecodeError`` (a ValueError) for anything that is
    not JSON, including arrays nested so deeply that the parser runs out of stack: a ``RecursionError`` would pass
    every reader's error handling and break, say, the whole correction set's listing for one bad file."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text[:100], 0) from None
