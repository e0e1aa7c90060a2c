"""PDF pages as grey images (forms_service.pdfpages), on a real PDF."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image

from forms_service.pdfpages import PDFIUM_LOCK, grey_pages, open_pdf


@pytest.fixture
def two_pages() -> bytes:
    white, black = Image.new("L", (200, 100), 255), Image.new("L", (200, 100), 0)
    buf = io.BytesIO()
    white.save(buf, "PDF", resolution=72, save_all=True, append_images=[black])
    return buf.getvalue()


def test_every_page_grey_at_the_resolution(two_pages, tmp_path):
    pages = grey_pages(two_pages, 144)
    assert [p.shape for p in pages] == [(200, 400), (200, 400)]
    assert pages[0].dtype.name == "uint8" and pages[0].min() == 255 and pages[1].max() == 0
    path = tmp_path / "deux.pdf"
    path.write_bytes(two_pages)
    assert len(grey_pages(path, 72)) == 2


def test_the_lock_is_held_while_the_document_is_open(two_pages):
    seen = []
    with open_pdf(two_pages) as doc:
        t = threading.Thread(target=lambda: seen.append(PDFIUM_LOCK.acquire(timeout=0.05)))
        t.start()
        t.join()
        assert len(doc) == 2
    assert seen == [False]
