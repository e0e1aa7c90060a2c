"""Security headers on every response, and safe download names.

- ``Content-Security-Policy``: our own origin only, no inline script or style
  (the templates use ``web/static`` files), no framing (``frame-ancestors 'none'``,
  and ``X-Frame-Options: DENY`` for older browsers);
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` (a page's
  address never leaves the site);
- ``Cache-Control: no-store`` on everything but static files (pages and API
  answers hold personal data);
- a ``Content-Disposition`` set by a view is rewritten to the RFC 6266 form: an
  ASCII ``filename`` fallback and the exact name in ``filename*`` (UTF-8).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from flask import Flask, Response, request
from werkzeug.http import parse_options_header

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
STATIC_ENDPOINTS = ("referent.static", "openapi.static", "referent.logo")


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """``attachment; filename="ascii"; filename*=UTF-8''exact`` (RFC 6266 / 5987)."""
    name = filename.replace("\\", "_").replace("/", "_").replace("\r", "").replace("\n", "")
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r'[^A-Za-z0-9._ -]', "_", ascii_name).strip() or "document"
    value = f'{disposition}; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


def _secure_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint not in STATIC_ENDPOINTS:
        response.headers["Cache-Control"] = "no-store"
    raw = response.headers.get("Content-Disposition")
    if raw:
        disposition, options = parse_options_header(raw)
        filename = options.get("filename*") or options.get("filename")
        if filename:
            response.headers["Content-Disposition"] = content_disposition(
                filename, "inline" if disposition == "inline" else "attachment")
    return response


def init_app(app: Flask) -> None:
    app.after_request(_secure_headers)
