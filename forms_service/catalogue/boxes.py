"""Whether a printed box is ticked for a value: the one rule the template's ☒, the
fillable PDF's check boxes, the layout map and the scan bench's truth share.

A box stands for one option ``code`` of a field (or for the field itself, ``code``
``True``, a box alone): it is ticked when a multi-choice holds the code, a one-choice
equals it, or a box alone is true. Pure: no import of the project.
"""

from __future__ import annotations

from typing import Any

BOX_ALONE = True


def is_ticked(value: Any, code: Any = BOX_ALONE) -> bool:
    if code is BOX_ALONE:
        return bool(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return code in value
    return value == code
