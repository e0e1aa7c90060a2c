"""Characters no document can hold.

A DOCX is XML 1.0, which cannot carry NUL and most control characters (C0 except
tab, line feed and carriage return), lone UTF-16 surrogates (JSON ``"\\ud800"``
decodes to one) or the non-characters U+FFFE and U+FFFF. DEL and the C1 controls
are legal XML but print nothing useful and come only from corrupted input, so they
are refused too. Validation refuses them in every string field (the form models,
``catalogue/model.py``); rendering checks the data again before anything is issued
(``render/service.py``), so a caller that skips validation cannot store them either.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

RULE = "caractere_interdit"

FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")

#: The same rule for the JSON Schemas (``pattern``), so that a client generating data
#: from the schema sends none of them (lone surrogates cannot be written in a pattern).
JSON_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\ufffe\\uffff]*$"


def message(char: str) -> str:
    return (f"Caractère interdit (U+{ord(char):04X}) : un document ne peut pas contenir de "
            "caractère de contrôle")


def first_forbidden(text: str) -> str | None:
    """The first forbidden character of ``text``, or ``None``."""
    found = FORBIDDEN.search(text)
    return found.group() if found else None


def forbidden_paths(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """``(path, character)`` for every string (keys included) holding a forbidden
    character anywhere in a JSON-like value; paths dotted, list indices from 0."""
    if isinstance(value, str):
        char = first_forbidden(value)
        if char is not None:
            yield path, char
    elif isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and first_forbidden(key) is not None:
                yield sub, first_forbidden(key)
            else:
                yield from forbidden_paths(item, sub)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from forbidden_paths(item, f"{path}.{i}" if path else str(i))
