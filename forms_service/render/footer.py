"""The footer line the stamp prints on every page, and its reading back.

``fiche-liaison · modèle 3f2a9c1b7d40 · page 2/3 · doc 01M8…`` (French, user-facing):
the form, the template version, the page and the document id. The stamp writes it
with :func:`format_footer`; the parsers read it with :func:`parse_footer`, from a
digital PDF's text (exact) or from the OCR of a scan (``ocr=True``: any separators,
``modele`` without its accent, any letter case, and a document id of at least 6
characters so that OCR noise is not taken for one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FORM = r"(?P<form>[a-z0-9-]+)"
_VERSION = r"(?P<version>[0-9a-f]{12})"


@dataclass(frozen=True)
class Footer:
    form: str
    version: str
    page: int
    pages: int
    doc_id: str


def format_footer(form: str, version: str, page: int, pages: int, doc_id: str) -> str:
    return f"{form} · modèle {version} · page {page}/{pages} · doc {doc_id}"


EXACT = re.compile(rf"{_FORM} · modèle {_VERSION} · page (?P<page>\d+)/(?P<pages>\d+) · doc (?P<doc>[A-Za-z0-9]+)")
OCR = re.compile(rf"{_FORM}\W+mod[eè]le\W+{_VERSION}\W+page\W+(?P<page>\d+)\s*/\s*(?P<pages>\d+)"
                 r"\W+doc\W+(?P<doc>[A-Z0-9]{6,26})", re.IGNORECASE)


def parse_footer(text: str, *, at: int = 0, ocr: bool = False) -> Footer | None:
    """The footer in ``text``: exactly at position ``at`` (a PDF's text), or anywhere
    in an OCR reading (``ocr=True``, normalised: lower-case form and version,
    upper-case document id)."""
    if ocr:
        m = OCR.search(text.replace("·", " ").replace("•", " "))
    else:
        m = EXACT.match(text, at)
    if not m:
        return None
    return Footer(m["form"].lower(), m["version"].lower(), int(m["page"]), int(m["pages"]),
                  m["doc"].upper() if ocr else m["doc"])


def footer_start(text: str, form_id: str) -> int:
    """Where the footer of ``form_id`` may start in a page's text (-1: nowhere)."""
    return text.find(f"{form_id} · modèle ")
