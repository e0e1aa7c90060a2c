"""The reader hands back its own page digests (issue 11's speed: no second decode).

``Limits(page_digests=True)``: one ``{"file", "page_digests": {page: sha256}}`` entry per
scanned file, the SHA-256 of the grey pixels the reader decoded — the same value a page
image's hash has wherever it was received (a PNG, a TIFF frame, a scanner's JPEG in a
PDF); none for a PDF page that is rendered (its form fields' values may not show), and
no entry at all unless asked (``POST /parse`` answers as before).
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from forms_service.app import create_app
    from parsers.store import Store

    app = create_app({"var_dir": tmp_path_factory.mktemp("digests") / "var", "database_url": None,
                      "departement_logo": None, "TESTING": True, "PDF_POOL_AUTOSTART": False})
    yield Store(app.extensions["forms_service.settings"], database=app.extensions["forms_service.db"])
    app.close()


def _page(seed: int) -> Image.Image:
    """A blank sheet as scanned (read at once: a blank page), a few specks apart."""
    rng = np.random.default_rng(seed)
    a = np.full((1169, 827), 255, np.uint8)   # A4 at 100 dpi
    a[rng.integers(0, 1169, 5), rng.integers(0, 827, 5)] = 200
    return Image.fromarray(a)


def _bytes(images: list[Image.Image], fmt: str) -> bytes:
    buf = io.BytesIO()
    images[0].save(buf, fmt, save_all=len(images) > 1, append_images=images[1:], resolution=100.0)
    return buf.getvalue()


def _sha(image: Image.Image) -> str:
    return hashlib.sha256(image.convert("L").tobytes()).hexdigest()


def test_the_reader_hands_back_its_page_digests(store):
    from parsers.parse import Limits, parse_files
    from parsers.scan.ingest import images_of

    pages = [_page(1), _page(2)]
    png, tiff, pdf = _bytes(pages[:1], "PNG"), _bytes(pages, "TIFF"), _bytes(pages, "PDF")
    files = [("a.png", png), ("b.tif", tiff), ("c.pdf", pdf)]

    items = parse_files(files, Limits(page_digests=True), store=store)
    digests = {i["file"]: i["page_digests"] for i in items if "page_digests" in i}
    assert digests["a.png"] == {1: _sha(pages[0])}
    assert digests["b.tif"] == {1: _sha(pages[0]), 2: _sha(pages[1])}   # the same image, the same hash
    # a scanner's PDF (one JPEG a page): the JPEG's pixels as decoded
    jpeg_pages = [img.gray for img in images_of("c.pdf", pdf, "pdf", 10)]
    assert digests["c.pdf"] == {n: hashlib.sha256(g.tobytes()).hexdigest() for n, g in enumerate(jpeg_pages, 1)}

    plain = parse_files(files, Limits(), store=store)
    assert not any("page_digests" in i for i in plain)
    assert [i for i in items if "page_digests" not in i] == plain
