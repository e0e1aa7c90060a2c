"""What every DOCX → PDF conversion checks and may raise, whichever way it runs.

The errors of a conversion (:class:`ConversionFailed`, :class:`ConversionTimeout`),
the checks on its input and output, and the tiny test document the pool prints to
know that an instance is ready.
"""

from __future__ import annotations

import io

from forms_service.errors import BadDocument, FormsError


class ConversionFailed(FormsError):
    """LibreOffice did not produce a PDF from a DOCX it was given."""

    http_status = 500
    exit_code = 3
    rule = "conversion_pdf_impossible"


class ConversionTimeout(ConversionFailed):
    """A conversion did not finish in time (after one retry on a fresh instance)."""

    http_status = 504
    rule = "conversion_pdf_delai_depasse"


def check_docx(docx: bytes) -> None:
    """Refuse what is not a DOCX (LibreOffice would import it as plain text and print it)."""
    if not isinstance(docx, (bytes, bytearray, memoryview)) or bytes(docx[:2]) != b"PK":
        raise BadDocument("Le document à convertir en PDF n'est pas un fichier DOCX.")


def check_pdf(pdf: bytes | None) -> bytes:
    if not pdf or not pdf.startswith(b"%PDF-"):
        raise ConversionFailed("LibreOffice n'a pas produit de PDF pour ce document.")
    return pdf


def pdf_page_count(pdf: bytes) -> int:
    """Pages of a PDF read with pypdf (raises on an unreadable PDF)."""
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages)


_TEST_DOCX: bytes | None = None
TEST_TEXT = "Test d'impression du service des formulaires RSA"


def test_docx() -> bytes:
    """A tiny A4 DOCX (one paragraph), made with python-docx, for readiness checks."""
    global _TEST_DOCX
    if _TEST_DOCX is None:
        import docx
        from docx.shared import Mm

        document = docx.Document()
        section = document.sections[0]
        section.page_width, section.page_height = Mm(210), Mm(297)
        document.add_paragraph(TEST_TEXT)
        buf = io.BytesIO()
        document.save(buf)
        _TEST_DOCX = buf.getvalue()
    return _TEST_DOCX


test_docx.__test__ = False  # not a pytest test, whatever imports it
