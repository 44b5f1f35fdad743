"""Card numbers are never stored: the pattern of a PAN-shaped run of digits, to refuse it where an
identifier is expected and to mask it in free text (baggage, log fields) before it goes anywhere.
"""

from __future__ import annotations

import re

# 13-19 digits, with spaces or dashes between them allowed: every PAN length the networks issue.
PAN_SHAPED = re.compile(r"(?:\d[ -]?){12,18}\d")
MASK = "[masked]"


def contains_pan(text: str) -> bool:
    """Whether ``text`` holds a run of digits shaped like a card number."""
    return PAN_SHAPED.search(text) is not None


def mask_pans(text: str) -> str:
    """``text`` with every PAN-shaped run replaced by ``[masked]``."""
    return PAN_SHAPED.sub(MASK, text)
