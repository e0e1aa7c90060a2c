"""The scan pipeline for one document: measure → decide → reconcile → record.

The document's pages were located (:mod:`parsers.scan.locate`: identified, aligned,
rectified) and grouped (:mod:`parsers.scan.batch`); this module only runs the
remaining stages in order over them: each box of the layout map is measured and
decided (:mod:`measure`, :mod:`decide`), each text or signature zone is checked for
ink the printed page does not explain, the issued document fills in what was printed
(:mod:`parsers.reconcile`), and :func:`parsers.record.make_record` makes the record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from forms_service.catalogue import FormDefinition
from forms_service.errors import BadDocument

from .. import reconcile
from ..acroform import field_of
from ..record import Reading, make_record
from ..store import Store, fit_layout
from . import decide, fit, measure
from .crops import Crops
from .locate import PageResult
from .references import References


@dataclass
class DocPages:
    form: FormDefinition
    version: str | None
    document_id: str | None
    pages: dict[int, PageResult] = field(default_factory=dict)
    page_count: int | None = None
    #: 0 for the first copy of an issued document in a batch, 1 for the next…
    copy: int = 0
    #: what was printed on each page (:meth:`References.page_of`), once the pages are read
    printed: dict[int, np.ndarray | None] = field(default_factory=dict)


def document_layout(doc: DocPages, store: Store, refs: References) -> dict | None:
    """The layout the document was printed with, moved onto its issued PDF's boxes."""
    data_dump = None
    lists = [f for f in doc.form.fields if f.type == "list"]
    if lists and doc.page_count and not refs.issued_document(doc.document_id):
        data_dump = _rows_for_pages(doc.form, doc.page_count, store)
    layout = store.layout_for(doc.form, doc.version, doc.document_id, data_dump)
    glyphs = refs.printed_glyphs(doc.document_id)
    if layout and glyphs:   # where the issued PDF printed its boxes (data can move them)
        layout = fit_layout(layout, glyphs)
    return layout


def _rows_for_pages(fd: FormDefinition, pages: int, store: Store) -> dict | None:
    """Without the issued document, the row counts that make the printed page count."""
    f = next(f for f in fd.fields if f.type == "list")
    for extra in range(0, 12):
        rows = (f.rows_per_page or 8) * (1 + extra)
        dump = fd.model.model_validate({f.path: [{}] * rows}).model_dump(mode="python")
        lay = store.computed_layout(fd, None, dump)
        if lay is None:
            return None
        if len(lay.get("pages", [])) >= pages:
            return dump
    return None


def read_document(doc: DocPages, name: str, store: Store, refs: References) -> dict:
    """The record of one document's located pages (raises BadDocument without a layout)."""
    fd = doc.form
    layout = document_layout(doc, store, refs)
    if layout is None:
        raise BadDocument(f"Mise en page inconnue pour {fd.id} (modèle {doc.version})",
                          rule="mise_en_page_inconnue")
    doc_key = doc.document_id or hashlib.sha1(f"{name}{sorted(doc.pages)}".encode()).hexdigest()[:16]
    if doc.copy:   # the crops of each copy apart
        doc_key = f"{doc_key}-{doc.copy + 1}"
    # and of each file read (two files of one document id never share a crop)
    doc_key = f"{doc_key}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    doc.printed = {n: refs.page_of(doc.document_id, fd.id, doc.version, n) for n in doc.pages}
    crops = Crops(store.settings.storage_dir, doc_key)
    fits = {n: fit.page_fit(pr.flat, refs.page_of(doc.document_id, fd.id, doc.version, n), pr.marks_mm,
                            pr.unplaced)
            for n, pr in doc.pages.items()}
    readings = _read_boxes(doc, layout, crops, fits)
    readings.update(_read_zones(doc, layout, crops, refs))
    issued = store.issued_data(doc.document_id)
    readings = reconcile.reconcile(fd, readings, issued)
    pages = [{"number": n, "file": pr.image.file, "file_page": pr.image.file_page, "rotation": pr.rotation,
              "identified_by": pr.identified_by} for n, pr in sorted(doc.pages.items())]
    return make_record(fd, source="scan", readings=readings, pages=pages, document_id=doc.document_id,
                       template_version=doc.version)


@dataclass
class BoxRead:
    """One box of the layout read on its page: its ink, its state, and why the page's fit
    or a square not found again makes it uncertain (None: no doubt)."""
    box: dict
    ink: measure.BoxInk
    state: decide.BoxState
    background: decide.Background | None = None
    doubt: str | None = None


def read_boxes(doc: DocPages, layout: dict, fits: dict[int, fit.PageFit] | None = None) -> list[BoxRead]:
    """Every box of the layout on the document's pages, measured (against what was printed
    around it, ``doc.printed``), then decided against its page's own quiet boxes around it
    (:func:`decide.backgrounds`) and the page's fit."""
    fits = fits or {}
    out: list[BoxRead] = []
    by_page: dict[int, list[dict]] = {}
    for b in layout["boxes"]:
        if b["page"] in doc.pages:
            by_page.setdefault(b["page"], []).append(b)
    for page, boxes in by_page.items():
        pr = doc.pages[page]
        squares = np.array([b["bbox"] for b in boxes], float)   # their marks are no crossing stroke
        inks = [measure.measure_box(pr.flat, b["bbox"], doc.printed.get(page), squares) for b in boxes]
        centres = [((b["bbox"][0] + b["bbox"][2]) / 2, (b["bbox"][1] + b["bbox"][3]) / 2) for b in boxes]
        pf = fits.get(page)
        placed = _placed_where_the_page_lies(pr.flat, doc.printed.get(page), squares, boxes, centres, inks, pf)
        for k, (b, ink, bg) in enumerate(zip(boxes, inks, decide.backgrounds(centres, inks))):
            st = decide.box_state(ink, bg)
            doubt = None
            if st.state in ("checked", "empty") and k not in placed:
                doubt = pf.doubt(b["bbox"]) if pf else None
                if doubt is None and not ink.found and not (pf and pf.fits_at(b["bbox"])) and \
                        not decide.placed_by_neighbours(k, centres, inks):
                    # a heavy mark may hide the square's outline: the printed content
                    # around it, or the squares of the boxes next to it, found where they
                    # should be, then vouch for the place
                    doubt = "Case imprimée non retrouvée à sa place : à vérifier d'après l'image"
                if doubt:
                    st = decide.BoxState("uncertain", min(st.confidence, 0.4))
            out.append(BoxRead(b, ink, st, bg, doubt))
    return out


#: rounds of :func:`_placed_where_the_page_lies`' second step (each square found again there
#: may place the boxes next to it)
PLACING_ROUNDS = 3
#: …fitted on the squares found within NEIGHBOURS_MM of a box, or, too few there (a row of
#: boxes far apart: seed 13, batch 22, page 6, a ticked box whose square the tick hides,
#: 25 mm from the next box), within this (mm)
PLACE_FAR_MM = 60.0
#: a box is looked for again no farther than halfway to the nearest other box, less this (mm):
#: its square found there cannot be its neighbour's (two boxes of the fiche de liaison are
#: 3.5 mm apart)
MOVE_MARGIN_MM = 0.4
#: a box the page's content does not fit around is still placed by its own square found
#: again near its place (within the ±1.2 mm searched) with a hollow-square match this firm
#: (empty boxes of phone photos: median 0.52; a square half hidden by a tick: ~0.2–0.3;
#: seed 23, batch 5, page 2: « avis_ep » found at 0.66, 1.2 mm off, on content 1.2 mm off)
FIRM_MATCH = 0.5


def _placed_where_the_page_lies(flat, reference, squares, boxes: list[dict], centres, inks: list,
                                pf: fit.PageFit | None) -> set[int]:
    """Boxes of a page that does not lie where the alignment puts it (a phone photo's
    perspective or curl), measured again where the page says they are; ``inks`` takes their
    new measures, and the set returned holds their indices: they are read, not sent to
    review for the misfit or a square not found.

    1. A box the page's content does not fit around (« Page déformée ») is looked for where
       the printed content near it lies (:meth:`fit.PageFit.shift_at`), and placed when its
       printed square is found there (within NEIGHBOURS_OFFSET_MM).
    2. A box whose square is still not found (a mark over it, or looked for too far off) is
       looked for where the squares found around it (within NEIGHBOURS_MM, at least
       NEIGHBOURS_FOUND of them) say the page lies, when they agree on it within
       NEIGHBOURS_OFFSET_MM: placed when its square is found there, or, hidden by its mark,
       by those squares (:func:`decide.placed_by_neighbours`'s rule, where they lie).
    """
    placed: set[int] = set()
    expected = np.array(centres, float) * measure.K      # pixels
    gaps = np.hypot(expected[:, None, 0] - expected[None, :, 0], expected[:, None, 1] - expected[None, :, 1])
    np.fill_diagonal(gaps, np.inf)
    # a box is never looked for more than halfway (less a margin) to the box next to it
    reach = gaps.min(axis=1) / 2 - MOVE_MARGIN_MM * measure.PX_PER_MM

    def near_enough(k: int, shift) -> bool:
        return shift is not None and np.hypot(*shift) <= reach[k]

    if pf is not None and pf.worst_mm > fit.BOX_TOLERANCE_MM:     # else the page fits everywhere
        for k, b in enumerate(boxes):
            if not pf.misfit_only(b["bbox"]):
                continue
            if inks[k].found and inks[k].match >= FIRM_MATCH:
                placed.add(k)       # its own square, found firmly near its place, vouches for it
                continue
            if near_enough(k, shift := pf.shift_at(b["bbox"])):
                ink = measure.measure_box(flat, b["bbox"], reference, squares, moved=shift)
                if ink.found and ink.offset_mm <= decide.NEIGHBOURS_OFFSET_MM:
                    inks[k] = ink
                    placed.add(k)
    # where each square was found against where the alignment puts it (pixels)
    found = np.array([ink.found and (k in placed or ink.offset_mm <= decide.NEIGHBOURS_OFFSET_MM)
                      for k, ink in enumerate(inks)])
    if found.sum() < decide.NEIGHBOURS_FOUND:
        return placed
    at = np.array([((i.square[0] + i.square[2]) / 2, (i.square[1] + i.square[3]) / 2) for i in inks], float)
    disp = at - expected
    tol = decide.NEIGHBOURS_OFFSET_MM * measure.PX_PER_MM
    tried: set[int] = set()
    for _ in range(PLACING_ROUNDS):      # a square found again helps place the next ones
        more = False
        for k, b in enumerate(boxes):
            if found[k] or k in placed or (pf is not None and pf.unplaced_at(b["bbox"])):
                continue
            shift = _local_shift(k, gaps[k], expected, disp, found, decide.NEIGHBOURS_MM) or \
                _local_shift(k, gaps[k], expected, disp, found, PLACE_FAR_MM)
            if shift is not None and np.hypot(*shift) <= tol:
                placed.add(k)       # the squares around say it lies where the alignment puts it
                continue
            if not near_enough(k, shift) or (k, shift) in tried:
                continue    # the squares around disagree
            tried.add((k, shift))
            ink = measure.measure_box(flat, b["bbox"], reference, squares, moved=shift)
            if ink.found and ink.offset_mm <= decide.NEIGHBOURS_OFFSET_MM:
                found[k], more = True, True
                disp[k] = ((ink.square[0] + ink.square[2]) / 2, (ink.square[1] + ink.square[3]) / 2) - expected[k]
            elif ink.found:
                continue
            inks[k] = ink
            placed.add(k)
        if not more:
            break
    return placed


def _local_shift(k: int, gaps: np.ndarray, expected: np.ndarray, disp: np.ndarray, found: np.ndarray,
                 within_mm: float) -> tuple[float, float] | None:
    """Where box ``k`` lies against where the alignment puts it (pixels), from the squares
    found around it (``disp``: theirs, where ``found``; ``gaps``: how far they are from it,
    pixels): an affine map of their displacements (a photo's perspective varies across a
    row) fitted on those within
    ``within_mm``, at least three, each within NEIGHBOURS_OFFSET_MM of it and the whole no
    more than fit.SHIFT_MAX_MM; or, when at least NEIGHBOURS_FOUND of them all lie within
    NEIGHBOURS_OFFSET_MM of their places, theirs; else None."""
    near = found & (gaps <= within_mm * measure.PX_PER_MM)     # gaps: from box k (pixels; inf for itself)
    tol = decide.NEIGHBOURS_OFFSET_MM * measure.PX_PER_MM
    if near.sum() >= decide.NEIGHBOURS_FOUND and np.hypot(*disp[near].T).max() <= tol:
        return tuple(np.median(disp[near], axis=0).tolist())   # they all lie where they should
    if near.sum() < 3:
        return None
    basis = np.column_stack([expected[near] - expected[k], np.ones(int(near.sum()))]) / [measure.PX_PER_MM, measure.PX_PER_MM, 1]
    if np.linalg.matrix_rank(basis[:, :2] - basis[:, :2].mean(axis=0), tol=1.0) < 2:
        return None     # all in one row or column: the shift across it is not known
    coef, *_ = np.linalg.lstsq(basis, disp[near], rcond=None)
    off = np.hypot(*(basis @ coef - disp[near]).T).max()
    shift = coef[2]            # at the box itself (its offset from itself is 0)
    if off > tol or np.hypot(*shift) > fit.SHIFT_MAX_MM * measure.PX_PER_MM:
        return None
    return float(shift[0]), float(shift[1])


def _read_boxes(doc: DocPages, layout: dict, crops: Crops,
                fits: dict[int, fit.PageFit] | None = None) -> dict[str, Reading]:
    """Each group of boxes measured, each box decided, then the group.

    A box is read confidently only where its printed square was found again where it
    should be and the page fits its original around it (``fits``, :mod:`fit`); else the
    box is uncertain and its field goes to review with the reason.
    """
    fd = doc.form
    readings: dict[str, Reading] = {}
    read = {id(r.box): r for r in read_boxes(doc, layout, fits)}
    boxes_by_path: dict[str, list[dict]] = {}
    for b in layout["boxes"]:
        boxes_by_path.setdefault(b["path"], []).append(b)
    for path, boxes in boxes_by_path.items():
        f = field_of(fd, path)
        if f is None:
            continue
        # a group's boxes may run over two pages (a long list of actions): each box is
        # read on its own page
        missing = sorted({b["page"] for b in boxes if b["page"] not in doc.pages})
        if missing:
            readings[path] = Reading(None, 0.0, True, [],
                                     "Page(s) manquante(s) : " + ", ".join(map(str, missing)))
            continue
        states, ev, doubts = {}, [], []
        for b in boxes:
            page = b["page"]
            pr = doc.pages[page]
            st = read[id(b)].state
            if read[id(b)].doubt:
                doubts.append(read[id(b)].doubt)
            states[True if b["value"] is True else b["value"]] = st
            e = {"page": page, "bbox": b["bbox"], "state": st.state}
            if st.state in ("uncertain", "corrected"):
                crop = crops.save(pr.flat, b["bbox"], f"{path}.{b['value']}", page)
                if crop:
                    e["crop"] = crop
            ev.append(e)
        codes = [True] if f.type == "bool" else [b["value"] for b in boxes]
        d = decide.decide_group(f.type, states, codes)
        if doubts and d.needs_review:
            d.reason = doubts[0]
        by_content = [doc.pages[p] for p in sorted({b["page"] for b in boxes})
                      if doc.pages[p].identified_by == "content" and not doc.pages[p].verified]
        if by_content:
            d.needs_review, d.reason = True, d.reason or by_content[0].message
        readings[path] = Reading(d.value, d.confidence, d.needs_review,
                                 [e for e in ev if e["state"] != "empty"] or ev[:1], d.reason)
    return readings


def _read_zones(doc: DocPages, layout: dict, crops: Crops, refs: References) -> dict[str, Reading]:
    """Signatures and handwriting: ink in a zone that the printed page does not have."""
    fd = doc.form
    readings: dict[str, Reading] = {}
    masks: dict[int, np.ndarray | None] = {}
    for z in layout.get("zones", []):
        pr = doc.pages.get(z["page"])
        if pr is None:
            continue
        if z["page"] not in masks:
            # ink the printed page does not have: the issued document itself (pre-filled
            # text is not handwriting), else the blank form; once per page
            ref = refs.page_of(doc.document_id, fd.id, doc.version, z["page"])
            masks[z["page"]] = measure.printed_mask(ref) if ref is not None and ref.shape == pr.flat.shape \
                else None
        ink = measure.measure_zone(pr.flat, z["bbox"], None, printed=masks[z["page"]])
        ev = {"page": z["page"], "bbox": z["bbox"]}
        zf = field_of(fd, z["path"])
        if fit.in_unplaced(z["bbox"], pr.unplaced) and (z["kind"] == "signature" or zf is None
                                                         or zf.type not in ("choice", "multi")):
            # in a part of the page not found again (a reflowed DOCX): its ink tells nothing
            crop = crops.save(pr.flat, z["bbox"], z["path"], z["page"])
            if crop:
                ev["crop"] = crop
            path = f"{z['path']}.signee" if z["kind"] == "signature" else z["path"]
            readings[path] = Reading(None, 0.0, True, [ev], "Partie de la page non retrouvée : à vérifier "
                                                            "d'après l'image")
            continue
        if z["kind"] == "signature":
            d = decide.signature_state(ink)
            if d.needs_review:
                crop = crops.save(pr.flat, z["bbox"], z["path"], z["page"])
                if crop:
                    ev["crop"] = crop
            readings[f"{z['path']}.signee"] = Reading(d.value, d.confidence, d.needs_review, [ev], d.reason)
            continue
        zf = field_of(fd, z["path"])
        if decide.is_written(ink):   # a crop for the person who types it in
            crop = crops.save(pr.flat, z["bbox"], z["path"], z["page"])
            if crop:
                ev["crop"] = crop
            readings[z["path"]] = Reading(None, 0.0, True, [ev], "Texte manuscrit : à saisir d'après l'image")
        elif zf is not None and zf.type in ("choice", "multi"):
            pass   # a code written in a cell (not a box): what was printed, by reconciliation
        else:
            readings[z["path"]] = Reading(None, 1.0, False, [ev])
    return readings
