"""Who this process works for: the name recorded with a correction (corrections/records.py), a session's decisions and
a batch run's rows (summary.csv's ``run_by``)."""
from __future__ import annotations

import os
from typing import Optional

ANNOTATOR_ENV = "NAPARI_UNETV2_ANNOTATOR"


def current_annotator() -> Optional[str]:
    """The name recorded with what this process stores: ``$NAPARI_UNETV2_ANNOTATOR`` (a shared workstation's account is
    no person), else the login name; None when neither is known."""
    named = os.environ.get(ANNOTATOR_ENV, "").strip()
    if named:
        return named[:100]
    import getpass

    try:
        return getpass.getuser() or None
    except (KeyError, OSError, ImportError):  # (no login name and no passwd entry: a container's odd uid)
        return None
