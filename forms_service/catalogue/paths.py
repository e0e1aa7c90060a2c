"""Dotted paths into a form's data: ``beneficiaire.nom``, ``pap.0.code``.

The project's one convention (see ``definition``): names joined by dots, list
rows by their 0-based index. One behaviour everywhere:

* ``get_path``: the value, or ``default`` when any step is missing (a key absent, an
  index past the end or not a number, a step into something that is not a dict or a
  list); never raises.
* ``set_path``: sets the value, creating what is missing on the way: a dict, or a
  list when the next step is an index; a list grows up to the index with empty rows
  (``{}``) when the path goes on into the row, else with ``None``.

Pure: no import of the project, so every layer may use it.
"""

from __future__ import annotations

from typing import Any

_MISSING = object()


def split(path: str) -> list[str]:
    """The steps of a path (``""`` is the root: no step)."""
    return path.split(".") if path else []


def join(*parts: Any) -> str:
    """A path from steps (``join("pap", 0, "code")`` → ``"pap.0.code"``); empty steps dropped."""
    return ".".join(str(p) for p in parts if p != "" and p is not None)


def _step(cur: Any, part: str) -> Any:
    if isinstance(cur, dict):
        return cur.get(part, _MISSING)
    if isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
        return cur[int(part)]
    return _MISSING


def get_path(data: Any, path: str, default: Any = None) -> Any:
    """The value at ``path`` in ``data``, or ``default`` when a step is missing."""
    cur = data
    for part in split(path):
        cur = _step(cur, part)
        if cur is _MISSING:
            return default
    return cur


def has_path(data: Any, path: str) -> bool:
    return get_path(data, path, _MISSING) is not _MISSING


def set_path(data: dict, path: str, value: Any) -> None:
    """Set the value at ``path``, creating the dicts and lists on the way.

    Raises ``TypeError`` when a step meets a value that is neither (a text where a
    group is expected): that is a caller's bug, not data to overwrite silently.
    """
    parts = split(path)
    if not parts:
        raise ValueError("a path to set has at least one step")
    cur: Any = data
    for part, nxt in zip(parts, parts[1:] + [None]):
        container = ({} if nxt is None or not nxt.isdigit() else [])
        if isinstance(cur, list):
            if not part.isdigit():
                raise TypeError(f"{path}: « {part} » is not a row index")
            idx = int(part)
            row = nxt is not None and not nxt.isdigit()
            while len(cur) <= idx:
                cur.append({} if row else None)
            if nxt is None:
                cur[idx] = value
            else:
                if cur[idx] is None:
                    cur[idx] = container
                cur = cur[idx]
        elif isinstance(cur, dict):
            if nxt is None:
                cur[part] = value
            else:
                if cur.get(part) is None:
                    cur[part] = container
                cur = cur[part]
        else:
            raise TypeError(f"{path}: cannot go into a {type(cur).__name__} at « {part} »")


def nest(path: str, value: Any) -> dict:
    """``{"a": {"b": value}}`` for ``"a.b"`` (a fresh tree holding one value)."""
    out: dict = {}
    set_path(out, path, value)
    return out


def unflatten(flat: dict[str, Any]) -> dict:
    """The nested data of leaf paths (``{"pap.0.code": x}`` → ``{"pap": [{"code": x}]}``)."""
    root: dict = {}
    for path, value in flat.items():
        set_path(root, path, value)
    return root
