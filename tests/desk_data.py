"""Scanned batches for the desk tests, made from documents rendered by the service
(real LibreOffice), rasterised, turned, shuffled and noised like a scanner's output.

    docs = render_documents(client, key, beneficiaries)   # {name: (document_id, pdf bytes)}
    files = mixed_batch(docs, layout)                       # [(name, bytes)], and what to expect
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
DPI = 150


def render(client, headers: dict, form_id: str, beneficiary: int | None = None,
           sample: str | None = None) -> tuple[str, bytes]:
    data = json.loads((SAMPLES / f"{sample or form_id}.json").read_text("utf-8"))
    url = f"/api/v1/forms/{form_id}/render?format=pdf" + (f"&beneficiaire={beneficiary}" if beneficiary else "")
    r = client.post(url, json=data, headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    return r.headers["X-Document-Id"], r.data


def pages_of(pdf: bytes) -> list[np.ndarray]:
    from forms_service.pdfpages import grey_pages
    return [p.copy() for p in grey_pages(pdf, DPI)]


def scanned(page: np.ndarray, seed: int, *, turn: int = 0) -> np.ndarray:
    """A scanner's copy: grey noise (another copy of the sheet differs), maybe upside down."""
    rng = np.random.default_rng(seed)
    noisy = np.clip(page.astype(np.int16) + rng.normal(0, 6, page.shape), 0, 255).astype(np.uint8)
    return np.rot90(noisy, turn // 90).copy() if turn else noisy


def signed(page: np.ndarray, bbox_pt: list[float], seed: int) -> np.ndarray:
    """A hand signature (a few dark strokes) in a zone given in PDF points."""
    import cv2
    rng = np.random.default_rng(seed)
    k = DPI / 72
    x0, top, x1, bottom = (int(v * k) for v in bbox_pt)
    out = page.copy()
    pts = np.stack([np.linspace(x0 + 6, x1 - 6, 12),
                    rng.uniform(top + 0.3 * (bottom - top), bottom - 0.3 * (bottom - top), 12)], 1)
    cv2.polylines(out, [pts.astype(np.int32)], False, 20, 3)
    return out


def blank_page(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(250 + rng.normal(0, 3, (1754, 1240)), 0, 255).astype(np.uint8)


def unknown_page(seed: int) -> np.ndarray:
    """A page that is no form of ours: a letter, lines of text."""
    import cv2
    img = np.full((1754, 1240), 250, np.uint8)
    for i in range(28):
        cv2.putText(img, f"Madame, Monsieur, ligne {i} d'un courrier sans rapport {seed}", (90, 160 + 52 * i),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.9, 30, 2)
    return img


def encode(pages: list[np.ndarray], fmt: str) -> bytes:
    from PIL import Image
    ims = [Image.fromarray(p) for p in pages]
    buf = io.BytesIO()
    if fmt == "pdf":
        ims[0].save(buf, format="PDF", save_all=True, append_images=ims[1:], resolution=DPI, quality=85)
    elif fmt == "tiff":
        ims[0].save(buf, format="TIFF", save_all=True, append_images=ims[1:], dpi=(DPI, DPI),
                    compression="tiff_lzw")
    elif fmt == "jpeg":
        ims[0].save(buf, format="JPEG", dpi=(DPI, DPI), quality=85)
    elif fmt == "png":
        ims[0].save(buf, format="PNG", dpi=(DPI, DPI))
    return buf.getvalue()


@dataclass
class Mixed:
    files: list[tuple[str, bytes]]
    #: every document id → how many records it must give
    records_per_document: dict[str, int]
    blank: int
    unknown: int
    #: (file index, earlier file index) of files sent twice
    twice: list[tuple[int, int]]
    pages: int
    copies_of: str = ""
    beneficiary_of: dict[str, int | None] = field(default_factory=dict)


def mixed_batch(docs: dict[str, tuple[str, bytes, int | None]], signature_zones: list[list[float]],
                text_zone: dict | None = None) -> Mixed:
    """A mixed batch: several forms and beneficiaries, pages shuffled and upside down, a
    blank page, an unknown page, three photocopies of one printed fiche de liaison in one
    file (each signed differently), one file twice.

    ``docs``: name → (document id, pdf, beneficiary id); must hold ``fiche``, ``cer``,
    ``annexe3`` and ``copies`` (the fiche printed once and photocopied).
    """
    fiche_id, fiche_pdf, _ = docs["fiche"]
    fiche = pages_of(fiche_pdf)
    # 1. the fiche de liaison, pages shuffled, one upside down, then a blank page
    order = [2, 0, 1][:len(fiche)] if len(fiche) == 3 else list(range(len(fiche)))[::-1]
    f1 = [scanned(fiche[i], 10 + i, turn=180 if i == 0 else 0) for i in order] + [blank_page(1)]
    # 2. a CER as a TIFF, with an unknown page (a letter) in the middle
    cer_id, cer_pdf, _ = docs["cer"]
    cer = [scanned(p, 20 + i) for i, p in enumerate(pages_of(cer_pdf))]
    f2 = cer[:1] + [unknown_page(2)] + cer[1:]
    # 3. an Annexe 3, one JPEG per page
    a3_id, a3_pdf, _ = docs["annexe3"]
    a3 = [encode([scanned(p, 30 + i, turn=180)], "jpeg") for i, p in enumerate(pages_of(a3_pdf))]
    # 4. three photocopies of one printed fiche de liaison, one after the other
    cp_id, cp_pdf, _ = docs["copies"]
    base = pages_of(cp_pdf)
    copies = []
    for c in range(3):
        for i, p in enumerate(base):
            page = p
            if c and i == len(base) - 1 and signature_zones:   # copies 2 and 3 signed differently
                for z in signature_zones[:c]:
                    page = signed(page, z, 40 + c)
            if text_zone and i == text_zone["page"] - 1:   # a handwritten zone: a crop per copy
                page = signed(page, text_zone["bbox"], 60 + c)
            copies.append(scanned(page, 50 + 10 * c + i))
    files = [("fiche.pdf", encode(f1, "pdf")), ("cer.tif", encode(f2, "tiff"))]
    files += [(f"annexe3-p{i + 1}.jpg", b) for i, b in enumerate(a3)]
    files.append(("copies.pdf", encode(copies, "pdf")))
    files.append(("fiche-encore.pdf", files[0][1]))   # the same file again
    pages = len(f1) + len(f2) + len(a3) + len(copies) + len(f1)
    return Mixed(files=files, records_per_document={fiche_id: 1, cer_id: 1, a3_id: 1, cp_id: 3},
                 blank=1, unknown=1, twice=[(len(files) - 1, 0)], pages=pages, copies_of=cp_id,
                 beneficiary_of={d[0]: d[2] for d in docs.values()})


# -- documents rendered once per test session --------------------------------------------

@dataclass
class Documents:
    """The desk tests' documents, rendered once per session by the service (real
    LibreOffice) in an app of their own, then installed into each test's database
    (:func:`install`): their issued-document and template-version rows (the layouts the
    reader needs) copied, the beneficiaries being the same (``people_data.seed`` makes the
    same ones in the same order everywhere)."""

    #: name → (document id, pdf, beneficiary id)
    docs: dict[str, tuple[str, bytes, int | None]]
    #: the fiche de liaison's signature zones on its last page (PDF points)
    zones: list[list[float]]
    #: the fiche de liaison's zones (layout map)
    layout: dict
    rows: list[tuple[type, dict]]
    beneficiaries: dict[str, int]

    @cached_property
    def mixed(self) -> Mixed:
        """The mixed batch of these documents (built once)."""
        text = next((z for z in self.layout["zones"] if z["kind"] != "signature"), None)
        return mixed_batch(self.docs, self.zones, text)


@pytest.fixture(scope="session")
def desk_documents(lo_pool, tmp_path_factory):
    """:class:`Documents` rendered once for the session's desk tests."""
    from forms_service.app import create_app

    app = create_app({"var_dir": tmp_path_factory.mktemp("desk-documents") / "var", "database_url": None,
                      "departement_logo": None, "TESTING": True, "PDF_POOL": lo_pool})
    try:
        yield render_documents(app)
    finally:
        app.close()


def render_documents(app) -> Documents:
    from forms_service import db
    from people_data import headers, seed

    people = seed(app)
    client = app.test_client()
    admin = headers(people["keys"]["admin@t.example"])
    b = people["beneficiaries"]
    docs = {"fiche": (*render(client, admin, "fiche-liaison", b["ref1_a"]), b["ref1_a"]),
            "cer": (*render(client, admin, "cers", b["ref2"]), b["ref2"]),
            "annexe3": (*render(client, admin, "annexe-3", b["ref1_b"]), b["ref1_b"]),
            "copies": (*render(client, admin, "fiche-liaison", None), None)}
    layout = client.get("/api/v1/forms/fiche-liaison/layout", headers=admin).get_json()
    last = max(z["page"] for z in layout["zones"])
    zones = [z["bbox"] for z in layout["zones"] if z["kind"] == "signature" and z["page"] == last]
    rows = []
    with app.app_context(), db.session() as s:
        for model in (db.TemplateVersion, db.IssuedDocument):
            for row in s.scalars(select(model)).all():
                rows.append((model, {c.key: getattr(row, c.key) for c in model.__table__.columns}))
    return Documents(docs=docs, zones=zones, layout=layout, rows=rows, beneficiaries=b)


def install(app, documents: Documents, people: dict) -> None:
    """Copy the session's documents into ``app``'s database (seeded with ``people_data.seed``)."""
    from forms_service import db

    assert people["beneficiaries"] == documents.beneficiaries   # the same people, the same ids
    with app.app_context(), db.session() as s:
        for model, values in documents.rows:
            s.merge(model(**values))
