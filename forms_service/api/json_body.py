"""What every JSON endpoint checks before its body is parsed.

An endpoint reads JSON when its view takes a ``body`` (flask-openapi3's convention;
``form`` is multipart). For those, a non-empty body must

* be sent as ``Content-Type: application/json`` (or ``…+json``): otherwise 415. A web
  page can make a browser post ``text/plain`` or a form to any site without asking;
  it cannot send ``application/json`` cross-site without a CORS preflight, which this
  service never grants — so a page a référent visits cannot issue documents;
* fit ``MAX_CONTENT_LENGTH`` (413, Werkzeug's limit, read here);
* nest at most :data:`MAX_DEPTH` arrays and objects: a cheap scan of the raw bytes,
  before any parser recurses into them (about 1 000 levels make Python's parsers
  raise ``RecursionError``): 400 ``profondeur_maximale``.

An empty body is left to the endpoint (a render without data is the blank form).
"""

from __future__ import annotations

import inspect
import re

from flask import Flask, current_app, request

from forms_service.errors import BadRequest, UnsupportedMediaType

#: Deepest nesting of arrays and objects a body may have (a form's data needs 4).
MAX_DEPTH = 32

_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nesting_depth(raw: bytes, stop_above: int | None = None) -> int:
    """How deep arrays and objects nest in the JSON text ``raw`` (strings skipped).
    Stops counting once above ``stop_above``."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = peak = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > peak:
                peak = depth
                if stop_above is not None and peak > stop_above:
                    return peak
        else:
            depth -= 1
    return peak


def takes_json(endpoint: str | None) -> bool:
    view = current_app.view_functions.get(endpoint) if endpoint else None
    if view is None:
        return False
    try:
        return "body" in inspect.signature(inspect.unwrap(view)).parameters
    except (TypeError, ValueError):
        return False


def check_json_body() -> None:
    """``before_request``: the checks above, for JSON endpoints only."""
    if request.method not in ("POST", "PUT", "PATCH") or not takes_json(request.endpoint):
        return
    raw = request.get_data(cache=True)  # 413 above MAX_CONTENT_LENGTH
    if not raw.strip():
        return
    mimetype = request.mimetype
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        shown = f"« {mimetype} »" if mimetype else "absent"
        raise UnsupportedMediaType(
            f"Type de contenu {shown} : le corps doit être envoyé en JSON "
            "(Content-Type: application/json)", path="Content-Type")
    if nesting_depth(raw, stop_above=MAX_DEPTH) > MAX_DEPTH:
        raise BadRequest(f"Données trop imbriquées : {MAX_DEPTH} niveaux de listes et d'objets "
                         "au plus", rule="profondeur_maximale")


def init_app(app: Flask) -> None:
    app.before_request(check_json_body)
