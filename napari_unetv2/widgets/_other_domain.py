"""One question before a correction goes to a line its image does not look made for.

A dermoscopy image segmented by the polyp model, corrected and accepted, trains the polyp line at its next round
(corrections go to the line of the model that made their mask: ``checkpoints/lines.py``). The domain hint said so
once, with the result (and once for a run of such images in a folder session); the accept then stored it without a
word (stop notes 38 and 39). Both accept paths ask here first: the first press says it, a second stores it, and the
same kind of image is not asked about again in that dock (a clinician who fine-tunes the polyp
model on dermoscopy images on purpose is asked once)."""
from __future__ import annotations

import time
from typing import Optional

AGAIN_WITHIN_S = 60  # a second press within this stores the correction anyway
DOUBLE_CLICK_S = 0.5  # ... but not one sooner than this: a double click (or a key held down) is not an answer


class OtherDomainQuestion:
    def __init__(self):
        self._asked, self._asked_at = None, float("-inf")  # what was asked last, and when
        self._answered: set = set()  # the advised models a second press let through (for any version: a round's new
        # version, from a line trained on such images on purpose, is not asked about again)

    def asks(self, image_name: str, advised: Optional[str], made_with: Optional[str], model_label: str,
             button: str, how_to_switch: str) -> str:
        """The question to say instead of storing ("" when the correction may be stored now). ``advised``: the mask
        layer's ``ADVISED_MODEL``; ``made_with``: the model version whose line the correction would train."""
        if not advised or not made_with or advised in self._answered:
            return ""
        key, since = (image_name, advised, made_with), time.monotonic() - self._asked_at
        if self._asked == key and DOUBLE_CLICK_S <= since < AGAIN_WITHIN_S:
            self._answered.add(advised)
            self._asked = None
            return ""
        if not (self._asked == key and since < DOUBLE_CLICK_S):  # (a double click's second press: still the first ask)
            self._asked, self._asked_at = key, time.monotonic()
        return (f"not stored yet: {image_name} looks like the images of the bundled {advised} model, but its mask was "
                f"made with {model_label}, so its correction would train that model's line at its next round. Press "
                f"{button} again to store it anyway (images like it are not asked about again here), or "
                f"{how_to_switch.format(model=f'the bundled {advised} model')} and segment it with that first.")
