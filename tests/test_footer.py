"""The footer line: written once, read back from a PDF's text and from an OCR reading."""

from __future__ import annotations

from forms_service.render.footer import Footer, footer_start, format_footer, parse_footer

DOC = "01M8REKCMETTNNTKXZVJX1AJ42"


def test_what_is_written_is_read_back():
    line = format_footer("fiche-liaison", "3f2a9c1b7d40", 2, 3, DOC)
    assert line == f"fiche-liaison · modèle 3f2a9c1b7d40 · page 2/3 · doc {DOC}"
    assert parse_footer(line) == Footer("fiche-liaison", "3f2a9c1b7d40", 2, 3, DOC)


def test_a_footer_glued_to_the_text_before_it():
    text = "Signature du référent" + format_footer("annexe-3", "a" * 12, 1, 1, DOC)
    at = footer_start(text, "annexe-3")
    assert at > 0 and parse_footer(text, at=at).form == "annexe-3"
    assert parse_footer(text) is None                                   # exact: at the given place


def test_an_ocr_reading():
    ocr = f"Annexe-3 . Modele AAAAAAAAAAAA • page 1 / 1 - doc {DOC.lower()}\n"
    assert parse_footer(ocr, ocr=True) == Footer("annexe-3", "a" * 12, 1, 1, DOC)
    assert parse_footer(ocr) is None
    assert parse_footer("annexe-3 modèle aaaaaaaaaaaa page 1/1 doc AB1", ocr=True) is None  # too short an id
