"""Generate a bench of realistic scans of the programme's forms, with their truth.

    .venv/bin/python -m benchmarks.scanbench.generate --out DIR --pages N --seed S [--forms F ...]

Each *batch* is what one person puts in the scanner at once: one to four documents
(forms of one beneficiary, sometimes of several), rendered by the service's own
pipeline (DOCX → LibreOffice PDF → page stamp with registration marks and QR codes),
ticked and signed by hand (:mod:`.marks`), printed, sometimes photocopied, and scanned
(:mod:`.damage`), then written as one multi-page PDF or TIFF, or one JPEG/PNG per page.
Beside each file, ``<file>.truth.json`` says what is on every page (see
``docs/scan-testbench.md``); ``DIR/index.json`` lists every page with its replay id.

Everything comes from ``--seed``: batch ``b`` draws from ``default_rng([seed, b])``,
its page ``j`` from ``default_rng([seed, b, …, j])``, so one batch (or one page of it)
is regenerated alone with ``--replay b`` / ``--replay b:j``. Document ids are seeded
ULIDs, not the clock's. The only thing that is not seeded is LibreOffice's PDF, which
is the same for the same template and data.

The layout map (:func:`forms_service.render.layout.layout_for`) says where every box,
text zone and signature zone is; the generator never measures a template itself.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import io
import json
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from forms_service.catalogue.boxes import is_ticked
from forms_service.catalogue.paths import get_path, set_path
from forms_service.pdfpages import PDFIUM_LOCK

from . import damage as dmg
from . import marks as mk

GENERATOR = "scanbench/1"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLES_DIR = PROJECT_ROOT / "samples"

FORMATS = {"pdf": 0.45, "tiff": 0.2, "jpeg": 0.2, "png": 0.15}
MODES_BY_FORMAT = {
    "pdf": {"grey": 0.45, "bw": 0.25, "color": 0.15, "auto": 0.15},
    "tiff": {"bw": 0.6, "grey": 0.4},
    "jpeg": {"grey": 0.6, "color": 0.4},
    "png": {"bw": 0.6, "grey": 0.3, "color": 0.1},
}
DPIS = (150, 200, 200, 240, 300, 300)
JPEG_QUALITIES = (30, 40, 50, 60, 70, 75, 80, 85, 90, 95)
MARK_KINDS = {"tick": 0.30, "cross": 0.30, "dot": 0.08, "scribble": 0.10, "border": 0.22}
MAIN_PENS = {"ballpoint_black": 0.33, "ballpoint_blue": 0.33, "felt_black": 0.08, "felt_blue": 0.08,
             "pencil": 0.18}
OFFICE_PENS = {"ballpoint_black": 0.45, "ballpoint_blue": 0.35, "felt_black": 0.1, "felt_blue": 0.1}
#: How pages come back (``--condition``; :data:`damage.CONDITIONS`, or ``mixed``). In the
#: ``mixed`` bench each block of 24 batches (shuffled, seeded) holds the issue's shares: a
#: third scanner pages, a third phone photos, a sixth faxes, a sixth sideways or printed
#: fit-to-page; two of its scanner slots are files that mix the conditions document by
#: document (drawn with :data:`PAGE_SHARES`).
MIX_BLOCK = (("scanner",) * 7 + ("mixed-file",) * 2 + ("phone",) * 7 + ("fax",) * 4
             + ("sideways",) * 2 + ("fit",) * 2)
PAGE_SHARES = {"scanner": 1 / 3, "phone": 1 / 3, "fax": 1 / 6, "sideways": 1 / 12, "fit": 1 / 12}
#: One-choice groups where a double tick is planted first (when the form has them).
AMBIGUITY_FIELDS = ("paliers.", "avis_ep", "decision_president", "reorientation.vers")

ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_EPOCH_MS = int(dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc).timestamp() * 1000)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def seeded_ulid(rng: np.random.Generator, when_ms: int) -> str:
    """A ULID (same format as :func:`forms_service.db.models.new_document_id`) from the rng."""
    rand = int(rng.integers(0, 1 << 40)) << 40 | int(rng.integers(0, 1 << 40))
    value = (when_ms << 80) | rand
    return "".join(ULID_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


# =========================================================================== data

FIRST = ("Kevin", "Sandrine", "Thierry", "Nathalie", "Jordan", "Amandine", "Mohamed", "Céline",
         "Dylan", "Sabrina", "Ludovic", "Aurélie", "Bruno", "Jessica", "Rémi", "Laetitia", "Farid",
         "Marie-Claude", "Jean-Pierre", "Océane")
LAST = ("Lemaire", "Wattebled", "Delattre", "Carpentier", "Dufour", "Lefebvre", "Vasseur",
        "Boulanger", "Merlin", "Declercq", "Benali", "Duhamel", "Caron", "Leroy", "Devaux", "Hochart",
        "Vandenbussche", "Lecointe", "Fournier", "Baert")
TOWNS = ("Arras", "Lens", "Boulogne-sur-Mer", "Calais", "Béthune", "Liévin", "Hénin-Beaumont",
         "Saint-Omer", "Bruay-la-Buissière", "Berck", "Montreuil", "Carvin")
STREETS = ("rue Jean Jaurès", "avenue de la République", "rue Victor Hugo", "place du Marché",
           "rue des Écoles", "résidence Les Tilleuls", "rue Pasteur", "chemin du Moulin")
WORDS = ("accompagnement", "rendez-vous", "démarches", "emploi", "formation", "logement", "santé",
         "mobilité", "projet", "contrat", "suivi", "orientation", "difficultés", "budget", "garde",
         "enfants", "permis", "atelier", "bilan", "remobilisation", "insertion", "référent",
         "dossier", "situation", "entretien", "réunion", "courrier", "candidature", "stage", "mission")


_get, _set = get_path, set_path


def _delete(data: dict, path: str) -> None:
    parts = path.split(".")
    cur: Any = data
    for part in parts[:-1]:
        cur = cur[int(part)] if isinstance(cur, list) else cur.get(part)
        if cur is None:
            return
    if isinstance(cur, dict):
        cur.pop(parts[-1], None)
    elif isinstance(cur, list) and parts[-1].isdigit() and int(parts[-1]) < len(cur):
        cur.pop(int(parts[-1]))


_is_checked = is_ticked


def _phone(rng) -> str:
    return "0" + str(int(rng.choice([3, 6, 7]))) + "".join(f" {int(rng.integers(0, 100)):02d}" for _ in range(4))


def random_text(rng: np.random.Generator, path: str, limit: int | None, lines: int,
                person: dict) -> str:
    name = path.rsplit(".", 1)[-1]
    limit = limit or 60
    if name == "prenom":
        text = person["prenom"]
    elif name == "nom" and path.startswith("beneficiaire"):
        text = person["nom"].upper()
    elif name in ("nom", "correspondant", "intervenant", "structure_animateur") or name.endswith("_nom"):
        text = f"{FIRST[int(rng.integers(len(FIRST)))]} {LAST[int(rng.integers(len(LAST)))]}"
    elif name in ("tel", "portable", "fax") or name.endswith("_tel") or name.endswith("_fax"):
        text = _phone(rng)
    elif "mail" in name:
        text = f"{LAST[int(rng.integers(len(LAST)))].lower()}@exemple.fr"
    elif name == "num_caf":
        text = person["num_caf"]
    elif "pole_emploi" in name or name == "numero":
        text = f"{int(rng.integers(1000000, 9999999))}{'ABCDEFGH'[int(rng.integers(8))]}"
    elif "adresse" in name:
        text = (f"{int(rng.integers(1, 140))} {STREETS[int(rng.integers(len(STREETS)))]}, "
                f"62{int(rng.integers(0, 999)):03d} {TOWNS[int(rng.integers(len(TOWNS)))]}")
    elif name in ("lieu", "mds") or "lieu" in name:
        text = ("MDS de " if name == "mds" else "") + TOWNS[int(rng.integers(len(TOWNS)))]
    elif "organisme" in name or "structure" in name:
        text = f"{'MDS' if rng.random() < 0.5 else 'Association'} {TOWNS[int(rng.integers(len(TOWNS)))]}"
    elif "situation_familiale" in name:
        text = str(rng.choice(["Célibataire", "Mariée, 2 enfants", "Séparé", "Concubinage", "Veuve"]))
    else:
        n = int(rng.integers(2, 8 + 10 * (lines - 1)))
        text = " ".join(WORDS[int(rng.integers(len(WORDS)))] for _ in range(n)).capitalize() + "."
    return text[:limit].strip()


def random_date(rng: np.random.Generator, path: str) -> dt.date:
    if "naissance" in path:
        start, days = dt.date(1960, 1, 1), 365 * 44
    else:
        start, days = dt.date(2009, 1, 1), 365 * 4
    return start + dt.timedelta(days=int(rng.integers(0, days)))


def _allowed_codes(f) -> list[str]:
    from forms_service.catalogue import references

    if f.options_from:   # a list's headings (Annexe 6 themes: not selectable) name no value
        return sorted(e.code for e in references.entries(f.options_from)
                      if e.extra.get("selectionnable", True))
    return list(f.codes)


def random_value(rng: np.random.Generator, f, path: str, person: dict) -> Any:
    t = f.type
    if t == "text":
        return random_text(rng, path, f.max_length, f.lines, person)
    if t == "date":
        return random_date(rng, path).isoformat()
    if t == "integer":
        lo = f.minimum if f.minimum is not None else 0
        hi = f.maximum if f.maximum is not None else lo + 12
        if "annee" in path or "ann" in path.rsplit(".", 1)[-1][:3]:
            lo, hi = max(lo, 1980), min(hi, 2012) if hi >= 1980 else 2012
        return int(rng.integers(lo, hi + 1))
    if t == "bool":
        return bool(rng.random() < 0.45)
    if t == "tri":
        return [True, False, None][int(rng.integers(3))]
    if t == "choice":
        return str(rng.choice(f.codes)) if f.codes else None
    if t == "multi":
        codes = list(f.codes)
        k = int(rng.integers(1, min(3, len(codes)) + 1)) if codes else 0
        return sorted(rng.choice(codes, size=k, replace=False).tolist(), key=codes.index) if k else []
    if t == "code":
        codes = _allowed_codes(f)
        return str(rng.choice(codes)) if codes else None
    return None


def random_person(rng: np.random.Generator) -> dict:
    return {"prenom": FIRST[int(rng.integers(len(FIRST)))], "nom": LAST[int(rng.integers(len(LAST)))],
            "num_caf": str(int(rng.integers(1000000, 9999999)))}


def random_data(rng: np.random.Generator, fd, person: dict) -> dict:
    """Random data for a form, sparse like a real one: some fields empty, reserved
    sections (EP, Président…) filled only sometimes."""
    data: dict = {}
    for section in fd.sections:
        p_fill = (0.4 if rng.random() < 0.45 else 0.0) if section.reserved else 0.75
        for f in section.fields:
            if not f.printed and f.type != "tri":
                continue
            if f.type == "signature":
                _set(data, f"{f.path}.signee", bool(rng.random() < (0.85 if p_fill else 0.0)))
                continue
            if f.type == "list":
                cap = f.max_items or (f.rows_per_page or 4) * 2
                n = int(rng.integers(0, min(cap, 8) + 1))
                rows = []
                for _ in range(n):
                    row = {}
                    for c in f.item_fields:
                        if rng.random() < 0.8:
                            v = random_value(rng, c, f"{f.path}.x.{c.path}", person)
                            if v is not None:
                                row[c.path] = v
                    rows.append(row)
                if rows:
                    _set(data, f.path, rows)
                continue
            if rng.random() >= p_fill:
                continue
            v = random_value(rng, f, f.path, person)
            if v is not None and v != []:
                _set(data, f.path, v)
    return data


def validated(fd, data: dict) -> tuple[Any, dict]:
    """(model instance, data) after dropping whatever the model rejects (a few passes)."""
    from pydantic import ValidationError

    from forms_service.catalogue.model import problems_from

    data = copy.deepcopy(data)
    for _ in range(8):
        try:
            return fd.model.model_validate(data), data
        except ValidationError as exc:
            problems = problems_from(exc)
            if not problems:
                raise
            for p in problems:
                _delete(data, p.path)
    return fd.model.model_validate(data), data


def load_samples(forms: dict) -> dict[str, list[tuple[str, dict]]]:
    """``{form_id: [(file name, data), ...]}`` from ``samples/*.json`` (valid ones only)."""
    out: dict[str, list[tuple[str, dict]]] = {}
    if not SAMPLES_DIR.is_dir():
        return out
    ids = sorted(forms, key=len, reverse=True)
    for path in sorted(SAMPLES_DIR.glob("*.json")):
        form_id = next((i for i in ids if path.stem == i or path.stem.startswith(i + "-")), None)
        if form_id is None:
            continue
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            _, kept = validated(forms[form_id], raw)
        except Exception as exc:  # a sample that cannot be read at all: say so, skip it
            log(f"scanbench: sample {path.name} skipped ({type(exc).__name__}: {exc})")
            continue
        if kept != raw:   # the definition changed under the sample: use what still fits
            log(f"scanbench: sample {path.name}: fields its form rejects are left out")
        out.setdefault(form_id, []).append((path.name, kept))
    return out


# =========================================================================== plan

@dataclass
class BoxPlan:
    state: str                      # checked | blackened
    mark: str                       # tick, cross, dot, scribble, border, fill
    pen: str
    ambiguous: bool = False
    correction: bool = False
    planted: str | None = None      # double_tick | blackened | correction


@dataclass
class DocPlan:
    batch: int
    index: int
    form: str
    document_id: str
    source: str
    fill: str                       # printed | hand | mixed
    mode: str                       # color | grey | bw (its pages' scan mode)
    photocopy: bool
    intended: dict                  # JSON data the person means (model dump)
    render_json: dict               # JSON data printed by the renderer (model dump)
    render_py: Any = None           # the same as the model's python dump (dates as dates)
    boxes: dict = field(default_factory=dict)       # (path, code) -> BoxPlan
    handwritten: dict = field(default_factory=dict)  # text path -> pen
    signed: dict = field(default_factory=dict)      # signature path -> pen or None
    ambiguous: list = field(default_factory=list)
    pens: dict = field(default_factory=dict)
    condition: str = "scanner"      # how its pages come back (damage.CONDITIONS)
    dpi: int | None = None          # its pages' resolution when not the batch's (phone, fax)
    copy: int = 0                   # in a stack of photocopies: 0 for the first copy, 1 for the next…


@dataclass
class BatchPlan:
    index: int
    seed: int
    format: str
    mode: str                       # a scan mode, or "auto" (per document, PDF only)
    dpi: int
    jpeg_quality: int | None
    docs: list[DocPlan]
    order: str                      # keep | shuffle | swap
    turn: str                       # none | pages | reversed_doc
    blanks: int
    condition: str = "scanner"      # damage.CONDITIONS, or "mixed-file" (one per document)
    #: a stack split over two files: the first page of the second file (its index in the batch)
    split: int | None = None


def _box_fields(fd, data: dict) -> list[tuple[str, Any, bool]]:
    """(full path, field, reserved) of every box field, list rows expanded from ``data``."""
    reserved = {f.path for s in fd.sections if s.reserved for f in s.fields}
    out = []
    for f in fd.fields:
        if f.type in ("bool", "choice", "multi") and f.printed:
            out.append((f.path, f, f.path in reserved))
        elif f.type == "list":
            rows = _get(data, f.path) or []
            for i in range(len(rows)):
                for c in f.item_fields:
                    if c.type in ("bool", "choice", "multi"):
                        out.append((f"{f.path}.{i}.{c.path}", c, False))
    return out


def _text_fields(fd, data: dict) -> list[tuple[str, bool]]:
    reserved = {f.path for s in fd.sections if s.reserved for f in s.fields}
    out = []
    for f in fd.fields:
        if f.type in ("text", "date", "integer", "code") and f.printed:
            out.append((f.path, f.path in reserved))
        elif f.type == "list":
            rows = _get(data, f.path) or []
            for i in range(len(rows)):
                for c in f.item_fields:
                    if c.type in ("text", "date", "integer", "code"):
                        out.append((f"{f.path}.{i}.{c.path}", False))
    return out


def _codes(f) -> list:
    return [True] if f.type == "bool" else list(f.codes)


def _clear(f) -> Any:
    return [] if f.type == "multi" else (False if f.type == "bool" else None)


def plan_document(rng: np.random.Generator, fd, *, batch: int, index: int, mode: str, person: dict,
                  samples: list[tuple[str, dict]], ulid_ms: int, data: dict | None = None,
                  document_id: str | None = None, fill: str | None = None,
                  ambiguities: bool = True) -> DocPlan:
    """One document's plan. ``data`` / ``document_id`` / ``fill`` given (a test that scans a
    document the service issued): those, instead of drawn ones. ``fill`` ``ticked``: boxes
    ticked by hand, text printed (a pre-filled form ticked with a pen). ``ambiguities``
    False: no correction or planted ambiguity (every mark says what the person means)."""
    if data is not None:
        source, data = "given", copy.deepcopy(data)
    elif samples and rng.random() < 0.4:
        name, raw = samples[int(rng.integers(len(samples)))]
        source, data = f"sample:{name}", copy.deepcopy(raw)
    else:
        source, data = "random", random_data(rng, fd, person)
    model, data = validated(fd, data)
    intended = model.model_dump(mode="json")
    fill = fill or _pick(rng, {"printed": 0.4, "hand": 0.35, "mixed": 0.25})
    pens_ok = {k: v for k, v in MAIN_PENS.items() if mk.PENS[k].allowed(mode)}
    main_pen = _pick(rng, pens_ok)
    office_pen = _pick(rng, OFFICE_PENS)
    ink_pen = main_pen if main_pen != "pencil" else office_pen     # a box is never blackened in pencil
    doc = DocPlan(batch=batch, index=index, form=fd.id,
                  document_id=document_id or seeded_ulid(rng, ulid_ms),
                  source=source, fill=fill, mode=mode, photocopy=bool(rng.random() < 0.12),
                  intended=intended, render_json={}, pens={"main": main_pen, "office": office_pen})
    render = copy.deepcopy(intended)

    # -- boxes: printed ☒ or ticked by hand
    hand_fields = []
    for path, f, reserved in _box_fields(fd, intended):
        by_hand = reserved or fill in ("hand", "ticked") or (fill == "mixed" and rng.random() < 0.5)
        if not by_hand:
            continue
        hand_fields.append((path, f, reserved))
        value = _get(intended, path)
        _set(render, path, _clear(f))
        for code in _codes(f):
            if _is_checked(value, code):
                doc.boxes[(path, code)] = BoxPlan("checked", _pick(rng, MARK_KINDS),
                                                  office_pen if reserved else main_pen)

    # -- corrections and planted ambiguities (only on boxes printed empty)
    def free_codes(path, f):
        return [c for c in _codes(f) if (path, c) not in doc.boxes]

    choice_hand = [(p, f, r) for p, f, r in hand_fields if f.type == "choice" and len(f.codes) >= 2]
    if ambiguities and choice_hand and rng.random() < 0.12:
        with_value = [(p, f, r) for p, f, r in choice_hand if _get(intended, p) is not None]
        if with_value:
            p, f, r = with_value[int(rng.integers(len(with_value)))]
            code = free_codes(p, f)[int(rng.integers(len(free_codes(p, f))))]
            doc.boxes[(p, code)] = BoxPlan("blackened", "fill", office_pen if r else ink_pen,
                                           correction=True, planted="correction", ambiguous=True)
    if ambiguities and choice_hand and rng.random() < 0.18:
        preferred = [x for x in choice_hand if x[0].startswith(AMBIGUITY_FIELDS)
                     and not any(k[0] == x[0] and b.planted for k, b in doc.boxes.items())]
        pool = preferred or [x for x in choice_hand
                             if not any(k[0] == x[0] and b.planted for k, b in doc.boxes.items())]
        if pool:
            p, f, r = pool[int(rng.integers(len(pool)))]
            pen = office_pen if r else main_pen
            have = [c for c in _codes(f) if (p, c) in doc.boxes]
            extra = rng.choice(free_codes(p, f), size=2 - len(have), replace=False).tolist() if len(have) < 2 else []
            for c in have + extra:
                doc.boxes[(p, c)] = BoxPlan("checked", _pick(rng, {"tick": 0.5, "cross": 0.5}), pen,
                                            ambiguous=True, planted="double_tick")
            doc.ambiguous.append({"path": p, "kind": "double_tick", "values": sorted(map(str, have + extra))})
    if ambiguities and hand_fields and rng.random() < 0.10:
        cands = []
        for p, f, r in hand_fields:
            if any(k[0] == p for k in doc.boxes) and f.type != "multi":
                continue   # a one-choice or bool group that already holds a mark
            cands += [(p, c, r) for c in free_codes(p, f)]
        if cands:
            p, c, r = cands[int(rng.integers(len(cands)))]
            doc.boxes[(p, c)] = BoxPlan("blackened", "fill", office_pen if r else ink_pen,
                                        ambiguous=True, planted="blackened")
            doc.ambiguous.append({"path": p, "kind": "blackened", "values": [str(c)]})

    # -- text written by hand instead of printed
    p_hand = {"printed": 0.0, "hand": 0.5, "mixed": 0.25, "ticked": 0.0}[fill]
    for path, reserved in _text_fields(fd, intended):
        value = _get(intended, path)
        if value in (None, "", []):
            continue
        if reserved or rng.random() < p_hand:
            _set(render, path, None)
            doc.handwritten[path] = office_pen if reserved else main_pen

    # -- signatures (always by hand)
    reserved = {f.path for s in fd.sections if s.reserved for f in s.fields}
    for f in fd.fields:
        if f.type == "signature":
            signed = _get(intended, f"{f.path}.signee") is True
            doc.signed[f.path] = (office_pen if f.path in reserved else main_pen) if signed else None

    render_model = fd.model.model_validate(render)
    doc.render_json = render_model.model_dump(mode="json")
    doc.render_py = render_model.model_dump(mode="python")
    return doc


def expected_data(doc: DocPlan) -> dict:
    """What a perfect reader returns: the intended data, ambiguous paths set to None."""
    out = copy.deepcopy(doc.intended)
    for a in doc.ambiguous:
        _set(out, a["path"], None)
    return out


def _allowed_modes(fmt: str, modes: tuple[str, ...] | None) -> dict[str, float]:
    m = dict(MODES_BY_FORMAT[fmt])
    if modes:
        m = {k: v for k, v in m.items() if k in modes or (k == "auto" and len(set(modes) - {"auto"}) > 1)}
    return m


def batch_condition(seed: int, b: int, condition: str) -> str:
    """The condition of batch ``b``: ``condition`` itself, or its slot in the seeded
    shuffle of :data:`MIX_BLOCK` for ``mixed`` (pure: a replayed batch gets the same)."""
    if condition != "mixed":
        return condition
    order = np.random.default_rng([seed, 24, b // len(MIX_BLOCK)]).permutation(len(MIX_BLOCK))
    return MIX_BLOCK[int(order[b % len(MIX_BLOCK)])]


def _plan_unusual(rng: np.random.Generator, seed: int, b: int, condition: str, forms: list,
                  samples: dict) -> BatchPlan:
    """A batch of phone photos, faxes, or a file mixing conditions document by document."""
    if condition == "phone":
        fmt = _pick(rng, {"jpeg": 0.6, "pdf": 0.4})
        mode, dpi, quality = _pick(rng, {"color": 0.65, "grey": 0.35}), 150, int(rng.integers(30, 71))
        n_docs = 1 if fmt == "jpeg" else int(rng.choice([1, 1, 2]))
    elif condition == "fax":
        fmt, mode, dpi, quality = _pick(rng, {"pdf": 0.6, "tiff": 0.4}), "bw", 100, None
        n_docs = int(rng.choice([1, 1, 2, 3]))
    else:   # mixed-file: a PDF, each document its own condition
        fmt, mode = "pdf", "auto"
        dpi, quality = int(rng.choice(DPIS)), int(rng.choice(JPEG_QUALITIES))
        n_docs = int(rng.choice([2, 2, 3, 4]))
    person = random_person(rng)
    docs = []
    for k in range(n_docs):
        if k and rng.random() < 0.3:
            person = random_person(rng)
        fd = forms[int(rng.integers(len(forms)))]
        doc_condition = condition if condition != "mixed-file" else _pick(rng, PAGE_SHARES)
        doc_mode = mode
        if doc_condition == "fax":
            doc_mode = "bw"
        elif mode == "auto":
            doc_mode = _pick(rng, {"color": 0.5, "grey": 0.5}) if doc_condition == "phone" else \
                str(rng.choice(["grey", "bw", "color"]))
        doc = plan_document(rng, fd, batch=b, index=k, mode=doc_mode, person=person,
                            samples=samples.get(fd.id, []),
                            ulid_ms=ULID_EPOCH_MS + seed % 100000 * 86_400_000 + b * 60_000 + k)
        doc.condition = doc_condition
        doc.dpi = {"phone": 150, "fax": 100}.get(doc_condition, dpi)
        docs.append(doc)
    order = _pick(rng, {"keep": 0.7, "shuffle": 0.15, "swap": 0.15})
    turn = _pick(rng, {"none": 0.8, "pages": 0.2}) if condition != "phone" else "none"
    blanks = int(rng.random() < 0.1) if fmt != "jpeg" else 0
    return BatchPlan(b, seed, fmt, mode, dpi, quality, docs, order, turn, blanks, condition)


#: Batches of photocopy stacks come after the bench's own (``--stacks``): their numbers
#: start here, so a stack never changes the draws of the mixed batches.
STACK_BATCH0 = 900


def plan_stack(seed: int, b: int, forms: list, samples: dict) -> BatchPlan:
    """A stack of photocopies of one printed form (issue 15): one issued document printed
    once, photocopied 2–4 times, each copy ticked by hand on its own (the printed text is
    the same on every copy), scanned in page order into one file or, one time in two,
    split over two files of the upload. Every copy is its own record, flagged as a copy."""
    rng = np.random.default_rng([seed, b, 31])
    fmt = _pick(rng, {"pdf": 0.6, "tiff": 0.4})
    mode = _pick(rng, _allowed_modes(fmt, None) if fmt == "tiff" else {"grey": 0.6, "bw": 0.4})
    dpi = int(rng.choice((200, 300)))
    quality = int(rng.choice(JPEG_QUALITIES)) if fmt == "pdf" else None
    person = random_person(rng)
    fd = forms[int(rng.integers(len(forms)))]
    ulid_ms = ULID_EPOCH_MS + seed % 100000 * 86_400_000 + b * 60_000
    first = plan_document(rng, fd, batch=b, index=0, mode=mode, person=person, samples=samples.get(fd.id, []),
                          ulid_ms=ulid_ms, fill="ticked")
    docs = [first]
    for k in range(1, int(rng.choice([2, 3, 3, 4]))):
        data = copy.deepcopy(first.intended)
        for path, f, _ in _box_fields(fd, data):   # another person's ticks on the same print
            if rng.random() < 0.6:
                _set(data, path, random_value(rng, f, path, person))
        doc = plan_document(rng, fd, batch=b, index=k, mode=mode, person=person, samples=[], ulid_ms=ulid_ms,
                            data=data, document_id=first.document_id, fill="ticked")
        if doc.render_json != first.render_json:   # a tick the rules took back changed the print
            doc = plan_document(rng, fd, batch=b, index=k, mode=mode, person=person, samples=[],
                                ulid_ms=ulid_ms, data=first.intended, document_id=first.document_id,
                                fill="ticked")
        doc.copy = k
        docs.append(doc)
    for doc in docs:
        doc.photocopy, doc.condition = True, "copies"
    plan = BatchPlan(b, seed, fmt, mode, dpi, quality, docs, "keep", "none", 0, "copies")
    if rng.random() < 0.5:
        plan.split = -1   # set once the page count is known (Bench.build): the copies' halves
    return plan


def plan_batch(seed: int, b: int, forms: list, samples: dict, *, formats: tuple[str, ...] | None = None,
               modes: tuple[str, ...] | None = None, dpis: tuple[int, ...] | None = None,
               condition: str = "scanner") -> BatchPlan:
    """Everything about batch ``b`` that does not need the rendered PDF (pure, seeded).

    ``condition``: one of :data:`damage.CONDITIONS`, or ``mixed`` (the issue's shares,
    :func:`batch_condition`). Scanner, sideways and fit-to-page batches are planned alike
    (the same draws as before conditions existed: old seeds give the same scanner pages).
    """
    rng = np.random.default_rng([seed, b])
    condition = batch_condition(seed, b, condition)
    if condition in ("phone", "fax", "mixed-file"):
        return _plan_unusual(rng, seed, b, condition, forms, samples)
    fmts = {k: v for k, v in FORMATS.items() if (not formats or k in formats) and _allowed_modes(k, modes)}
    if not fmts:
        raise SystemExit("scanbench: no output format fits --formats and --modes")
    fmt = _pick(rng, fmts)
    mode = _pick(rng, _allowed_modes(fmt, modes))
    dpi = int(rng.choice(dpis or DPIS))
    if fmt == "png" and mode != "bw" and not dpis:
        dpi = min(dpi, 200)      # a grey or colour PNG of a noisy 300-dpi scan: 5–15 MB, ~1 s to write
    quality = int(rng.choice(JPEG_QUALITIES)) if fmt in ("pdf", "jpeg") else None
    single = fmt in ("jpeg", "png")
    n_docs = 1 if single else int(rng.choice([1, 1, 1, 1, 2, 2, 3, 4]))
    person = random_person(rng)
    docs = []
    doc_modes = [m for m in ("grey", "bw", "color") if not modes or m in modes]
    for k in range(n_docs):
        if k and rng.random() < 0.3:
            person = random_person(rng)       # another beneficiary in the same file
        fd = forms[int(rng.integers(len(forms)))]
        doc_mode = mode if mode != "auto" else str(rng.choice(doc_modes))
        docs.append(plan_document(rng, fd, batch=b, index=k, mode=doc_mode, person=person,
                                  samples=samples.get(fd.id, []),
                                  ulid_ms=ULID_EPOCH_MS + seed % 100000 * 86_400_000 + b * 60_000 + k))
    order = _pick(rng, {"keep": 0.6, "shuffle": 0.25, "swap": 0.15})
    turn = _pick(rng, {"none": 0.55, "pages": 0.35, "reversed_doc": 0.10})
    blanks = int(rng.choice([0, 0, 0, 0, 0, 0, 0, 1, 1, 2])) if not single else int(rng.random() < 0.04)
    for doc in docs:
        doc.condition = condition
    return BatchPlan(b, seed, fmt, mode, dpi, quality, docs, order, turn, blanks, condition)


# =========================================================================== render

@dataclass
class Rendered:
    pdf: bytes
    layout: dict
    version: str
    pages: int
    blank_key: tuple = ()      # the blank render (same rows) it is compared with, see placed()


_BLANKS: dict[tuple, bytes] = {}
_BLANK_RUNS: dict[tuple, dict] = {}
_BLANK_LOCK = threading.Lock()


def blank_pdf(fd, settings, pool, version: str, data_py: dict) -> tuple:
    """The blank render (nothing ticked or written, the same list rows) the layout map
    describes, converted once per (form, version, rows); returns its cache key."""
    from forms_service.render.layout import render_blank, row_counts

    key = (fd.id, version, tuple(sorted(row_counts(fd, data_py).items())))
    with _BLANK_LOCK:
        if key in _BLANKS:
            return key
    pdf = pool.convert(render_blank(fd, settings=settings, version=version, data_dump=data_py))
    with _BLANK_LOCK:
        _BLANKS.setdefault(key, pdf)
    return key


#: Conditions printed from the DOCX download; ``docx-reflow``: opened in a word processor
#: whose line breaks differ from LibreOffice's (:func:`reflowed_docx`) before it is printed.
DOCX_PRINTS = ("docx", "docx-reflow")
REFLOW_TEXT = " (paragraphe complété par le référent, ses lignes sont recoupées)"


def reflowed_docx(docx_bytes: bytes) -> bytes:
    """The DOCX as another word processor lays it out: the first paragraph of prose (over 80
    characters, no colon) lengthened, so that its lines break elsewhere and what follows it
    moves down, as in the round-trip matrix's edit (``tests/test_parse_roundtrip.py``); the
    service still holds the DOCX it issued."""
    import docx

    d = docx.Document(io.BytesIO(docx_bytes))
    for para in d.paragraphs:
        if len(para.text) > 80 and ":" not in para.text:
            para.add_run(REFLOW_TEXT)
            break
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def render_document(doc: DocPlan, fd, settings, pool) -> Rendered:
    """DOCX → PDF (pool) → stamp, and the layout map for its list rows. Thread-safe.

    A ``docx`` document is the DOCX download (its QR code in the header) converted by
    LibreOffice as a person prints it: no stamp (marks, page QR codes, footer)."""
    from forms_service.render.layout import layout_for
    from forms_service.render.pipeline import render_docx, template_version
    from forms_service.render.stamp import stamp_pdf

    version = template_version(fd, settings)
    if doc.condition in DOCX_PRINTS:   # the DOCX download printed: its header QR, no stamp
        docx = render_docx(fd, doc.render_py, settings=settings, document_id=doc.document_id, version=version)
        if doc.condition == "docx-reflow":
            docx = reflowed_docx(docx)
        pdf = pool.convert(docx)
    else:
        docx = render_docx(fd, doc.render_py, settings=settings, document_id=doc.document_id,
                           version=version, for_pdf=True)
        pdf = stamp_pdf(pool.convert(docx), fd.id, version, doc.document_id)
    layout = layout_for(fd, settings=settings, pool=pool, data_dump=doc.render_py)
    if layout.get("template_version") not in (None, version):
        raise RuntimeError(f"{fd.id}: layout map is for version {layout.get('template_version')}, "
                           f"the render for {version}")
    key = blank_pdf(fd, settings, pool, version, doc.render_py)
    return Rendered(pdf, layout, version, len(layout["pages"]), key)




BOX_GLYPHS = ("\u2610", "\u2612")   # ☐ ☒


def text_runs(pdf: bytes, pages: set[int] | None = None) -> dict[int, list[tuple[str, float, float]]]:
    """``{page: [(text, x0, top), ...]}``: the PDF's text segments (pdfium's text rects),
    for ``pages`` (1-based; all when None)."""
    import pypdfium2 as pdfium

    runs: dict[int, list] = {}
    with PDFIUM_LOCK:
        doc = pdfium.PdfDocument(pdf)
        try:
            for i in range(len(doc)):
                if pages is not None and i + 1 not in pages:
                    continue
                page = doc[i]
                height = page.get_size()[1]
                text = page.get_textpage()
                for r in range(text.count_rects()):
                    left, bottom, right, top = text.get_rect(r)
                    t = text.get_text_bounded(left, bottom, right, top).strip()
                    if len(t) >= 3 and not t.startswith(BOX_GLYPHS):
                        runs.setdefault(i + 1, []).append((t, left, height - top))
                text.close()
                page.close()
        finally:
            doc.close()
    return runs


def rasterize(pdf: bytes, dpi: int, color: bool) -> tuple[list[tuple[np.ndarray, tuple[float, float]]], list]:
    """Every page of ``pdf`` at ``dpi`` (grey or RGB uint8) with its size in points, and the
    centres ``(page, x, y)`` (points, top-left origin) of its ☐/☒ glyphs in content order."""
    import pypdfium2 as pdfium

    out, glyphs = [], []
    with PDFIUM_LOCK:
        doc = pdfium.PdfDocument(pdf)
        try:
            for i in range(len(doc)):
                page = doc[i]
                size = page.get_size()
                bitmap = page.render(scale=dpi / 72.0, grayscale=not color, rev_byteorder=color)
                arr = np.array(bitmap.to_numpy(), copy=True)
                if arr.ndim == 3 and not color:
                    arr = arr[..., 0]
                if arr.ndim == 3 and arr.shape[2] == 4:
                    arr = arr[..., :3]
                out.append((np.ascontiguousarray(arr), (float(size[0]), float(size[1]))))
                text = page.get_textpage()
                n = text.count_chars()
                full = text.get_text_range(0, n)
                exact = len(full) == n      # one UTF-16 unit per char (no astral characters)
                for c in (j for j, ch in enumerate(full) if ch in BOX_GLYPHS) if exact else range(n):
                    if exact or text.get_text_range(c, 1) in BOX_GLYPHS:
                        left, bottom, right, top = text.get_charbox(c)
                        glyphs.append((i + 1, (left + right) / 2, size[1] - (top + bottom) / 2))
                text.close()
                page.close()
        finally:
            doc.close()
    return out, glyphs


def _anchors(blank: dict, actual: dict) -> dict[int, list[tuple[float, float, float, float]]]:
    """Static text found once on a page of both renders: ``{page: [(x0, top, dx, dy)]}``
    (blank position, and how far the real render moved it)."""
    out: dict[int, list] = {}
    for page, runs in blank.items():
        mine = actual.get(page, [])
        count_b: dict[str, int] = {}
        count_a: dict[str, int] = {}
        for t, *_ in runs:
            count_b[t] = count_b.get(t, 0) + 1
        for t, *_ in mine:
            count_a[t] = count_a.get(t, 0) + 1
        where_a = {t: (x, y) for t, x, y in mine if count_a[t] == 1}
        for t, x, y in runs:
            if count_b[t] == 1 and t in where_a:
                ax, ay = where_a[t]
                out.setdefault(page, []).append((x, y, ax - x, ay - y))
    return out


def _zone_shift(zone: dict, anchors: list) -> tuple[float, float] | None:
    """The move of a zone: the move of the static text nearest above it (its label, its
    row), preferring text in the zone's columns."""
    x0, top, x1, bottom = zone["bbox"]
    best, best_score = None, None
    for ax, ay, dx, dy in anchors:
        if ay > bottom - 1:
            continue
        horizontal = 0.0 if x0 - 200 <= ax <= x1 else min(abs(ax - x0), abs(ax - x1))
        score = max(0.0, top - ay) + 0.5 * horizontal
        if best_score is None or score < best_score:
            best, best_score = (dx, dy), score
    return best


def zone_pages(rendered: Rendered, doc: DocPlan) -> set[int]:
    """Pages holding a zone the truth reports (signatures, handwriting)."""
    return {z["page"] for z in rendered.layout["zones"]
            if z["kind"] == "signature" or z["path"] in doc.handwritten}


def placed(rendered: Rendered, glyphs: list, runs: dict, doc: DocPlan) -> tuple[list[dict], list[dict]]:
    """The layout map's boxes and zones where they are printed on *this* render.

    The layout map is made from a render with blank data; text printed in a filled
    render can make rows taller and move everything below (seen: up to 10 pt). Each box
    is matched to the i-th ☐/☒ glyph of the real PDF and moved onto it (``layout_bbox``
    keeps the map's value). A zone moves like the static text nearest above it (its
    label), found once in both the blank render and this one (``shift_estimated``).
    A box count mismatch means the truth cannot be told: error.
    """
    lboxes, lzones = rendered.layout["boxes"], rendered.layout["zones"]
    if len(glyphs) != len(lboxes):
        raise RuntimeError(f"{doc.form} doc {doc.document_id}: the PDF prints {len(glyphs)} boxes, "
                           f"the layout map has {len(lboxes)}")
    boxes = []
    for b, (page, cx, cy) in zip(lboxes, glyphs):
        x0, top, x1, bottom = b["bbox"]
        dx, dy = cx - (x0 + x1) / 2, cy - (top + bottom) / 2
        nb = dict(b)
        if page != b["page"] or abs(dx) > 0.3 or abs(dy) > 0.3:
            nb["page"] = page
            nb["bbox"] = [round(x0 + dx, 2), round(top + dy, 2), round(x1 + dx, 2), round(bottom + dy, 2)]
            nb["layout_bbox"] = b["bbox"]
            if page != b["page"]:
                nb["layout_page"] = b["page"]
        boxes.append(nb)
    with _BLANK_LOCK:
        blank_runs = _BLANK_RUNS.get(rendered.blank_key)
    if blank_runs is None:
        blank_runs = text_runs(_BLANKS[rendered.blank_key])   # all pages, once per blank render
        with _BLANK_LOCK:
            _BLANK_RUNS[rendered.blank_key] = blank_runs
    anchors = _anchors(blank_runs, runs)
    rows = _row_moves(lboxes, boxes)
    pages = _page_moves(lboxes, boxes)
    zones = []
    for z in lzones:
        nz = dict(z)
        row = rows.get(_row_of(z["path"]))
        if row is not None:
            # a cell of a list row (a PAP row, an offer): where that row's boxes were printed,
            # on their page (rows that wrapped push the next ones down, onto the next page:
            # seed 37's CERP, seed 47 docx's CERS page 2)
            page, dy = row
            move = (0.0, dy)
        else:
            page = pages.get(z["page"], z["page"])
            move = _zone_shift(z, anchors.get(z["page"], [])) if page == z["page"] else None
        if page != z["page"]:
            nz["page"], nz["layout_page"] = page, z["page"]
        if move and (abs(move[0]) > 0.3 or abs(move[1]) > 0.3):
            dx, dy = move
            x0, top, x1, bottom = z["bbox"]
            nz["bbox"] = [round(x0 + dx, 2), round(top + dy, 2), round(x1 + dx, 2), round(bottom + dy, 2)]
            nz["layout_bbox"] = z["bbox"]
            nz["shift_estimated"] = row is None
        zones.append(nz)
    return boxes, zones


def _row_of(path: str) -> str | None:
    """``"pap.4"`` for a cell path ``"pap.4.code"`` of a list row, else None."""
    parts = path.split(".")
    return ".".join(parts[:2]) if len(parts) >= 3 and parts[1].isdigit() else None


def _row_moves(lboxes: list[dict], boxes: list[dict]) -> dict[str, tuple[int, float]]:
    """``{row: (printed page, dy)}``: where each list row's first box was printed (page, and
    its move down in points) against the layout map, when the row holds boxes."""
    out: dict[str, tuple[int, float]] = {}
    for lb, b in zip(lboxes, boxes):
        row = _row_of(lb["path"])
        if row is not None and row not in out:
            out[row] = (b["page"], b["bbox"][1] - lb["bbox"][1])   # the cell keeps its place in its row
    return out


def _page_moves(lboxes: list[dict], boxes: list[dict]) -> dict[int, int]:
    """``{layout page: printed page}`` for the pages whose boxes all went to one printed page
    (rows that wrap push the following pages on); a page without boxes follows the page
    before it."""
    seen: dict[int, set[int]] = {}
    for lb, b in zip(lboxes, boxes):
        seen.setdefault(lb["page"], set()).add(b["page"])
    last = max([b["page"] for b in lboxes] or [0])
    out, offset = {}, 0
    for page in range(1, last + 4):
        printed = seen.get(page)
        if printed and len(printed) == 1:
            offset = next(iter(printed)) - page
        out[page] = page + offset
    return out


# =========================================================================== pages

@dataclass
class PageOut:
    image: np.ndarray
    truth: dict
    clean: np.ndarray | None = None    # the sheet before the scan (debug)


def _r(v: float, n: int = 2) -> float:
    return round(float(v), n)


def make_page(doc: DocPlan, rendered: Rendered, page_no: int, raster: tuple[np.ndarray, tuple[float, float]],
              where: tuple[list[dict], list[dict]], plan: BatchPlan, quarter: int, rng: np.random.Generator,
              keep_clean: bool) -> PageOut:
    """One scanned page of a document: marks, print/photocopy/scan damage, and its truth."""
    img, size_pt = raster
    img = img.copy()
    d = page_damage(doc, plan, quarter, rng)
    img = dmg.print_damage(img, d)
    k = d.dpi / 72.0
    ppm = d.dpi / 25.4
    boxes, signatures, texts = [], [], []
    for box in where[0]:
        if box["page"] != page_no:
            continue
        path, code = box["path"], box["value"]
        printed = _is_checked(_get(doc.render_json, path), code)
        bp = doc.boxes.get((path, code))
        entry = {"path": path, "value": code, "label": box.get("label", ""), "bbox": box["bbox"],
                 "state": "checked" if printed else "empty", "mark": "printed" if printed else None,
                 "printed": printed, "ambiguous": False}
        if "layout_bbox" in box:
            entry["layout_bbox"] = box["layout_bbox"]
        if bp is not None:
            pen = mk.PENS[bp.pen]
            bx = [v * k for v in box["bbox"]]
            width = mk.draw_box_mark(img, bp.mark, tuple(bx), pen, rng, ppm)
            entry.update(state=bp.state, mark=bp.mark, ink=bp.pen, stroke_mm=width, ambiguous=bp.ambiguous)
            if bp.correction:
                entry["correction"] = True
            if bp.planted:
                entry["planted"] = bp.planted
        boxes.append(entry)
    for zone in where[1]:
        if zone["page"] != page_no:
            continue
        zx = tuple(v * k for v in zone["bbox"])
        moved = {k2: zone[k2] for k2 in ("layout_bbox", "shift_estimated") if k2 in zone}
        if zone["kind"] == "signature":
            pen_name = doc.signed.get(zone["path"])
            entry = {"path": zone["path"], "bbox": zone["bbox"], "signed": pen_name is not None, **moved}
            if pen_name:
                entry.update(ink=pen_name, stroke_mm=mk.draw_signature(img, zx, mk.PENS[pen_name], rng, ppm))
            signatures.append(entry)
        elif zone["path"] in doc.handwritten:
            pen_name = doc.handwritten[zone["path"]]
            width = mk.draw_handwriting(img, zx, mk.PENS[pen_name], rng, ppm)
            texts.append({"path": zone["path"], "bbox": zone["bbox"], "handwritten": width > 0,
                          "ink": pen_name, "stroke_mm": width, **moved})
    clean = img.copy() if keep_clean else None
    img = dmg.photocopy_damage(img, d, rng)
    out, matrix = dmg.scan_damage(img, d, rng, size_pt)
    if d.mode == "bw":
        out = dmg.binarize(out, d)
    if d.fax_lines:
        out = dmg.fax_lines(out, d, rng)
    for entry in boxes + signatures + texts:
        entry["px_bbox"] = dmg.transform_bbox(matrix, entry["bbox"])
    truth = {
        "blank": False, "form": doc.form, "document_id": doc.document_id, "copy": doc.copy + 1,
        "template_version": rendered.version, "page_number": page_no, "page_count": rendered.pages,
        "rotation": d.rotation, "skew_deg": d.skew_deg, "dpi": d.dpi, "mode": d.mode,
        "condition": d.condition,
        "size": list(d.size), "matrix": d.matrix, "damage": d.as_dict(),
        "boxes": boxes, "signatures": signatures, "handwriting": texts,
    }
    return PageOut(out, truth, clean)


def page_damage(doc: DocPlan, plan: BatchPlan, quarter: int, rng: np.random.Generator) -> dmg.PageDamage:
    """The damage of one page of ``doc``, by its condition (a scanner page draws exactly as before)."""
    quality = plan.jpeg_quality if doc.mode != "bw" else None
    if doc.condition == "phone":
        return dmg.sample_phone_damage(rng, mode=doc.mode, quarter_turn=quarter,
                                       jpeg_quality=min(quality or 50, 70))
    if doc.condition == "fax":
        return dmg.sample_fax_damage(rng, quarter_turn=quarter)
    d = dmg.sample_page_damage(rng, dpi=doc.dpi or plan.dpi, mode=doc.mode, quarter_turn=quarter,
                               jpeg_quality=quality, photocopy=doc.photocopy)
    d.condition = doc.condition
    if doc.condition == "fit":
        d.fit = dmg.sample_fit(rng)
        d.scale = 1.0           # the sheet itself is not reduced: its content is
    return d


def make_blank(plan: BatchPlan, mode: str, quarter: int, rng: np.random.Generator,
               front: np.ndarray | None) -> PageOut:
    d = dmg.sample_page_damage(rng, dpi=plan.dpi, mode=mode, quarter_turn=quarter,
                               jpeg_quality=plan.jpeg_quality if mode != "bw" else None, photocopy=False)
    show = front if (front is not None and rng.random() < 0.5) else None
    out = dmg.blank_page(d, rng, (595.276, 841.89), show)
    if mode == "bw":
        out = dmg.binarize(out, d)
    truth = {"blank": True, "show_through": show is not None, "form": None, "document_id": None,
             "template_version": None, "page_number": None, "page_count": None,
             "rotation": d.rotation, "skew_deg": d.skew_deg, "dpi": d.dpi, "mode": d.mode,
             "condition": plan.condition if plan.condition in dmg.CONDITIONS else "scanner",
             "size": list(d.size), "matrix": d.matrix, "damage": d.as_dict(),
             "boxes": [], "signatures": [], "handwriting": []}
    return PageOut(out, truth)


# =========================================================================== writers

def one_bit(img: np.ndarray):
    """A 0/255 page as a Pillow mode "1" image (no dithering, no float pass)."""
    from PIL import Image

    h, w = img.shape[:2]
    return Image.frombytes("1", (w, h), np.packbits(img > 127, axis=1).tobytes())


def _g4_strip(img: np.ndarray) -> bytes:
    """CCITT G4 data of a 1-bit page (via Pillow's libtiff, one strip)."""
    from PIL import Image

    h = img.shape[0]
    buf = io.BytesIO()
    one_bit(img).save(buf, "TIFF", compression="group4", tiffinfo={278: h})
    buf.seek(0)
    with Image.open(buf) as im:
        offsets, counts = im.tag_v2[273], im.tag_v2[279]
    data = buf.getvalue()
    return b"".join(data[o:o + c] for o, c in zip(offsets, counts))


def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    arr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def write_pdf(path: Path, pages: list[PageOut]) -> None:
    """An image PDF: JPEG (DCTDecode) grey/colour pages, CCITT G4 1-bit pages, one image per page."""
    import pikepdf
    from pikepdf import Array, Dictionary, Name

    pdf = pikepdf.new()
    for p in pages:
        t = p.truth
        h, w = p.image.shape[:2]
        dpi = t["dpi"]
        if t["mode"] == "bw":
            data = _g4_strip(p.image)
            image = pikepdf.Stream(pdf, data)
            image.DecodeParms = Dictionary(K=-1, Columns=w, Rows=h, BlackIs1=True)
            image.Filter = Name.CCITTFaxDecode
            image.BitsPerComponent = 1
            image.ColorSpace = Name.DeviceGray
        else:
            quality = t["damage"]["jpeg_quality"] or 85
            image = pikepdf.Stream(pdf, encode_jpeg(p.image, quality))
            image.Filter = Name.DCTDecode
            image.BitsPerComponent = 8
            image.ColorSpace = Name.DeviceRGB if p.image.ndim == 3 else Name.DeviceGray
        image.Type = Name.XObject
        image.Subtype = Name.Image
        image.Width, image.Height = w, h
        pw, ph = w * 72.0 / dpi, h * 72.0 / dpi
        page = pdf.add_blank_page(page_size=(pw, ph))
        page.Resources = Dictionary(XObject=Dictionary(Im0=pdf.make_indirect(image)))
        page.Contents = pdf.make_stream(f"q {pw:.4f} 0 0 {ph:.4f} 0 0 cm /Im0 Do Q".encode())
        page.MediaBox = Array([0, 0, pw, ph])
    pdf.save(path, static_id=True)


def write_tiff(path: Path, pages: list[PageOut]) -> None:
    """Multi-page TIFF: 1-bit pages in CCITT G4, grey/colour pages LZW."""
    from PIL import Image

    frames = []
    for p in pages:
        im = Image.fromarray(p.image)
        frames.append(one_bit(p.image) if p.truth["mode"] == "bw" else im)
    bw = pages[0].truth["mode"] == "bw"
    frames[0].save(path, "TIFF", save_all=True, append_images=frames[1:],
                   compression="group4" if bw else "tiff_lzw", dpi=(pages[0].truth["dpi"],) * 2)


def write_single(path: Path, page: PageOut) -> None:
    from PIL import Image

    t = page.truth
    im = Image.fromarray(page.image)
    if path.suffix == ".jpg":
        # a phone writes 72 dpi in its JPEGs whatever it photographed: the reader must not trust it
        dpi = 72 if t.get("condition") == "phone" else t["dpi"]
        im.save(path, "JPEG", quality=t["damage"]["jpeg_quality"] or 85, dpi=(dpi,) * 2)
    else:
        (one_bit(page.image) if t["mode"] == "bw" else im).save(path, "PNG", compress_level=1,
                                                                dpi=(t["dpi"],) * 2)


# =========================================================================== batches

def _orders(plan: BatchPlan, rendered: list[Rendered], rng: np.random.Generator):
    """Page order and quarter turns: [(doc index or None for blank, page number, quarter)]."""
    seq: list[list] = []
    for k, r in enumerate(rendered):
        pages = list(range(1, r.pages + 1))
        quarter = [0] * r.pages
        if plan.turn == "reversed_doc" and rng.random() < 0.6:
            pages, quarter = pages[::-1], [180] * r.pages
        elif plan.turn == "pages":
            quarter = [180 if rng.random() < 0.12 else 0 for _ in pages]
        seq += [[k, p, q] for p, q in zip(pages, quarter)]
    if plan.order == "shuffle" and len(seq) > 1:
        seq = [seq[i] for i in rng.permutation(len(seq))]
    elif plan.order == "swap" and len(seq) > 1:
        i = int(rng.integers(len(seq) - 1))
        seq[i], seq[i + 1] = seq[i + 1], seq[i]
    for _ in range(plan.blanks):
        seq.insert(int(rng.integers(len(seq) + 1)), [None, None, 0])
    return seq


@dataclass
class Options:
    formats: tuple[str, ...] | None = None
    modes: tuple[str, ...] | None = None
    dpis: tuple[int, ...] | None = None
    allow_90: bool = False
    debug: bool = False
    condition: str = "scanner"      # damage.CONDITIONS, or "mixed" (the issue's shares)
    #: stacks of photocopies made after the ``pages`` (batches STACK_BATCH0…, :func:`plan_stack`)
    stacks: int = 0


class Bench:
    """One generation run: the forms, samples, settings and converter pool it uses."""

    def __init__(self, out: Path, seed: int, form_ids: list[str] | None, *, settings=None, pool=None,
                 options: Options | None = None):
        from forms_service.catalogue import catalogue
        from forms_service.config import Settings
        from forms_service.errors import TemplateError
        from forms_service.render.pipeline import template_path

        self.out = Path(out)
        self.seed = int(seed)
        self.options = options or Options()
        self.settings = settings or Settings.from_env()
        all_forms = {fd.id: fd for fd in catalogue.forms() if fd.kind == "form"}
        if form_ids:
            unknown = [f for f in form_ids if f not in all_forms]
            if unknown:
                raise SystemExit(f"scanbench: unknown form(s): {', '.join(unknown)} "
                                 f"(forms: {', '.join(all_forms)})")
            chosen = [all_forms[f] for f in form_ids]
        else:
            chosen = []
            for fd in all_forms.values():
                try:
                    template_path(fd, self.settings)
                    chosen.append(fd)
                except TemplateError:
                    log(f"scanbench: form {fd.id} skipped (no template yet)")
        if not chosen:
            raise SystemExit("scanbench: no form to render")
        self.explicit = bool(form_ids)
        self.forms = chosen
        self.by_id = {fd.id: fd for fd in chosen}
        self.samples = load_samples(all_forms)
        self._own_pool = pool is None
        self.pool = pool
        self.timing = {"render_wait": 0.0, "rasterize": 0.0, "pages": 0.0, "write": 0.0}

    def __enter__(self) -> Bench:
        if self.pool is None:
            from forms_service.render.pdf import ConverterPool

            self.pool = ConverterPool(work_dir=Path(self.settings.var_dir) / "lo")
        try:
            self.pool.start()
            if not self.explicit:
                self._preflight()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _preflight(self) -> None:
        """Drop (loudly) the default forms whose layout map cannot be made yet (a template
        being written): the bench runs on the others. Forms named with --forms are never dropped."""
        from forms_service.errors import FormsError
        from forms_service.render.layout import layout_for

        def check(fd):
            try:
                layout_for(fd, settings=self.settings, pool=self.pool)
                return None
            except FormsError as exc:
                return f"{type(exc).__name__}: {exc}"

        with ThreadPoolExecutor(max_workers=max(1, self.pool.size)) as ex:
            problems = dict(zip([fd.id for fd in self.forms], ex.map(check, self.forms)))
        for form_id, problem in problems.items():
            if problem:
                log(f"scanbench: form {form_id} skipped, its layout map fails: {problem[:300]}")
        self.forms = [fd for fd in self.forms if not problems[fd.id]]
        self.by_id = {fd.id: fd for fd in self.forms}
        if not self.forms:
            raise SystemExit("scanbench: no form has a usable layout map")

    def __exit__(self, *exc) -> None:
        if self._own_pool and self.pool is not None:
            self.pool.close()

    def plan(self, b: int) -> BatchPlan:
        o = self.options
        if b >= STACK_BATCH0:
            return plan_stack(self.seed, b, self.forms, self.samples)
        return plan_batch(self.seed, b, self.forms, self.samples, formats=o.formats, modes=o.modes, dpis=o.dpis,
                          condition=o.condition)

    def submit(self, executor: ThreadPoolExecutor, plan: BatchPlan) -> list[Future]:
        """One render per document id: the copies of a stack share their print."""
        by_id: dict[str, Future] = {}
        for d in plan.docs:
            if d.document_id not in by_id:
                by_id[d.document_id] = executor.submit(render_document, d, self.by_id[d.form], self.settings,
                                                       self.pool)
        return [by_id[d.document_id] for d in plan.docs]

    def build(self, plan: BatchPlan, rendered: list[Rendered], only: int | None = None,
              limit: int | None = None) -> tuple[list[PageOut], list[list]]:
        """The pages of a batch, in file order (``only``: just that page; ``limit``: the first ones)."""
        seq = _orders(plan, rendered, np.random.default_rng([self.seed, plan.index, 7]))
        rng_side = np.random.default_rng([self.seed, plan.index, 90])
        for item in seq:     # a stack fed sideways: every page at 90° or 270°
            if item[0] is not None and plan.docs[item[0]].condition == "sideways":
                item[2] = int(rng_side.choice([90, 270]))
        if self.options.allow_90:
            rng90 = np.random.default_rng([self.seed, plan.index, 9])
            for item in seq:
                if rng90.random() < 0.08:
                    item[2] = (item[2] + int(rng90.choice([90, 270]))) % 360
        if limit is not None:
            seq = seq[:limit]
        if plan.split is not None:   # a stack over two files: the second from the middle copy on
            half = len(plan.docs) // 2
            plan.split = next(j for j, s in enumerate(seq) if s[0] == half)
        t0 = time.perf_counter()
        rasters: dict[int, list] = {}
        where: dict[int, tuple] = {}
        for k in sorted({s[0] for s in seq if s[0] is not None}):
            rasters[k], glyphs = rasterize(rendered[k].pdf, plan.docs[k].dpi or plan.dpi,
                                           plan.docs[k].mode == "color")
            runs = text_runs(rendered[k].pdf, zone_pages(rendered[k], plan.docs[k]))
            where[k] = placed(rendered[k], glyphs, runs, plan.docs[k])
        self.timing["rasterize"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        pages: list[PageOut] = []
        for j, (k, page_no, quarter) in enumerate(seq):
            if only is not None and j != only:
                pages.append(None)  # type: ignore[arg-type]
                continue
            try:
                if k is None:
                    rng = np.random.default_rng([self.seed, plan.index, 900, j])
                    mode = plan.mode if plan.mode != "auto" else "grey"
                    neighbour = next((s for s in seq[:j][::-1] if s[0] is not None), None)
                    front = rasters[neighbour[0]][neighbour[1] - 1][0] if neighbour else None
                    page = make_blank(plan, mode, quarter, rng, front)
                else:
                    rng = np.random.default_rng([self.seed, plan.index, 100 + k, page_no])
                    page = make_page(plan.docs[k], rendered[k], page_no, rasters[k][page_no - 1], where[k],
                                     plan, quarter, rng, self.options.debug)
            except Exception:
                log(f"scanbench: FAILED seed {self.seed} batch {plan.index} page {j} — replay with "
                    f"--seed {self.seed} --replay {plan.index}:{j}")
                raise
            page.truth["index"] = j
            page.truth["replay"] = f"--seed {self.seed} --replay {plan.index}:{j}"
            pages.append(page)
        self.timing["pages"] += time.perf_counter() - t0
        return pages, seq

    def write(self, plan: BatchPlan, rendered: list[Rendered], pages: list[PageOut]) -> list[dict]:
        """Write the batch's file(s) and truth; return index rows (one per page)."""
        t0 = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        stem = f"scan-{plan.index:04d}"
        present = [p for p in pages if p is not None]
        files: list[tuple[Path, list[PageOut]]] = []
        if plan.format in ("pdf", "tiff"):
            ext = "pdf" if plan.format == "pdf" else "tif"
            parts = [(f"{stem}.{ext}", present)]
            if plan.split:   # a stack scanned in two goes
                parts = [(f"{stem}a.{ext}", [p for p in present if p.truth["index"] < plan.split]),
                         (f"{stem}b.{ext}", [p for p in present if p.truth["index"] >= plan.split])]
            for fname, part in parts:
                path = self.out / fname
                files.append((path, part))
                (write_pdf if plan.format == "pdf" else write_tiff)(path, part)
        else:
            ext = "jpg" if plan.format == "jpeg" else "png"
            for p in present:
                path = self.out / f"{stem}-p{p.truth['index'] + 1}.{ext}"
                write_single(path, p)
                files.append((path, [p]))
        issued = self.out / "issued"   # the PDF printed, as the service stores it (the bench issues it)
        issued.mkdir(exist_ok=True)
        for d, r in zip(plan.docs, rendered):
            if d.condition not in DOCX_PRINTS and not (issued / f"{d.document_id}.pdf").exists():
                (issued / f"{d.document_id}.pdf").write_bytes(r.pdf)
        rows = []
        for path, file_pages in files:
            doc_ids = {p.truth["document_id"] for p in file_pages if p.truth["document_id"]}
            docs = []
            copies = {(p.truth["document_id"], p.truth.get("copy", 1)) for p in file_pages}
            for d, r in zip(plan.docs, rendered):
                if d.document_id not in doc_ids or (d.document_id, d.copy + 1) not in copies:
                    continue
                docs.append({"document_id": d.document_id, "copy": d.copy + 1,
                             "copies": sum(x.document_id == d.document_id for x in plan.docs), "form": d.form,
                             "template_version": r.version,
                             "pages": r.pages, "source": d.source, "fill": d.fill, "mode": d.mode,
                             "photocopy": d.photocopy, "pens": d.pens, "ambiguous": d.ambiguous,
                             "format": "docx" if d.condition in DOCX_PRINTS else "pdf",
                             "data": d.render_json, "expected": expected_data(d)})
            truth = {"generator": GENERATOR, "seed": self.seed, "batch": plan.index, "file": path.name,
                     "format": plan.format, "scan_mode": plan.mode, "dpi": plan.dpi, "condition": plan.condition,
                     "jpeg_quality": plan.jpeg_quality, "order": plan.order,
                     "replay": f"python -m benchmarks.scanbench.generate --out DIR --seed {self.seed} "
                               f"--replay {plan.index}",
                     "pages": [p.truth for p in file_pages], "documents": docs}
            with open(f"{path}.truth.json", "w", encoding="utf-8") as fh:
                json.dump(truth, fh, ensure_ascii=False, indent=1)
            for n, p in enumerate(file_pages):
                rows.append({"file": path.name, "page": n, "batch": plan.index, "index": p.truth["index"],
                             "blank": p.truth["blank"], "form": p.truth["form"], "mode": p.truth["mode"],
                             "dpi": p.truth["dpi"], "rotation": p.truth["rotation"],
                             "condition": p.truth["condition"]})
            if self.options.debug:
                self._debug(path, file_pages)
        self.timing["write"] += time.perf_counter() - t0
        return rows

    def _debug(self, path: Path, pages: list[PageOut]) -> None:
        """``debug/``: the sheet before the scan, and the scan with the truth drawn on it (100 dpi)."""
        ddir = self.out / "debug"
        ddir.mkdir(exist_ok=True)
        colours = {"checked": (0, 170, 0), "empty": (150, 150, 150), "blackened": (200, 0, 200)}
        for n, p in enumerate(pages):
            t = p.truth
            f = 100.0 / t["dpi"]
            img = p.image if p.image.ndim == 3 else cv2.cvtColor(p.image, cv2.COLOR_GRAY2RGB)
            small = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            for b in t["boxes"]:
                c = (230, 0, 0) if b["ambiguous"] else colours[b["state"]]
                x0, y0, x1, y1 = (int(round(v * f)) for v in b["px_bbox"])
                cv2.rectangle(small, (x0 - 2, y0 - 2), (x1 + 2, y1 + 2), c, 1)
            for s in t["signatures"] + t["handwriting"]:
                c = (0, 0, 230) if s.get("signed", s.get("handwritten")) else (150, 150, 255)
                x0, y0, x1, y1 = (int(round(v * f)) for v in s["px_bbox"])
                cv2.rectangle(small, (x0, y0), (x1, y1), c, 1)
            name = f"{path.name}-p{n + 1}"
            cv2.imwrite(str(ddir / f"{name}-truth.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
            if p.clean is not None:
                cl = p.clean if p.clean.ndim == 3 else cv2.cvtColor(p.clean, cv2.COLOR_GRAY2RGB)
                cv2.imwrite(str(ddir / f"{name}-clean.png"), cv2.cvtColor(cl, cv2.COLOR_RGB2BGR))


def run(out: Path, pages: int, seed: int, forms: list[str] | None = None, *, pool=None, settings=None,
        options: Options | None = None, replay: tuple[int, int | None] | None = None) -> dict:
    """Generate ``pages`` pages into ``out`` (or replay one batch/page); returns the index."""
    t_start = time.perf_counter()
    bench = Bench(out, seed, forms, settings=settings, pool=pool, options=options)
    rows: list[dict] = []
    with bench:
        workers = max(1, bench.pool.size)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scanbench-render") as ex:
            if replay is not None:
                b, j = replay
                plan = bench.plan(b)
                rendered = [f.result() for f in bench.submit(ex, plan)]
                built, _ = bench.build(plan, rendered, only=j)
                rows += bench.write(plan, rendered, built)
            else:
                ahead: list[tuple[BatchPlan, list[Future]]] = []
                b = 0
                done = 0
                # rough page estimate per batch so that the queue stays ~2 batches ahead
                while done < pages:
                    while len(ahead) < 3:
                        plan = bench.plan(b)
                        ahead.append((plan, bench.submit(ex, plan)))
                        b += 1
                    plan, futures = ahead.pop(0)
                    t0 = time.perf_counter()
                    rendered = [f.result() for f in futures]
                    bench.timing["render_wait"] += time.perf_counter() - t0
                    built, _ = bench.build(plan, rendered, limit=pages - done)
                    rows += bench.write(plan, rendered, built)
                    done += len(built)
                for b in range(STACK_BATCH0, STACK_BATCH0 + bench.options.stacks):
                    plan = bench.plan(b)
                    rendered = [f.result() for f in bench.submit(ex, plan)]
                    built, _ = bench.build(plan, rendered)
                    rows += bench.write(plan, rendered, built)
                for _, futures in ahead:   # batches planned ahead and not needed
                    for f in futures:
                        f.cancel()
                    for f in futures:
                        if not f.cancelled():
                            try:
                                f.result()
                            except Exception:
                                pass
    for g, row in enumerate(rows):
        row["global"] = g
    elapsed = time.perf_counter() - t_start
    index = {"generator": GENERATOR, "seed": seed, "pages": len(rows),
             "forms": [fd.id for fd in bench.forms], "replay": list(replay) if replay else None,
             "files": sorted({r["file"] for r in rows}), "rows": rows,
             "seconds": round(elapsed, 2),
             "timing": {k: round(v, 2) for k, v in bench.timing.items()}}
    if replay is None:
        with open(Path(out) / "index.json", "w", encoding="utf-8") as fh:
            json.dump(index, fh, ensure_ascii=False, indent=1)
    return index


def _replay_arg(text: str) -> tuple[int, int | None]:
    b, _, j = text.partition(":")
    return int(b), (int(j) if j else None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scanbench.generate",
                                 description="Seeded bench of realistic scans of the forms, with truth files.")
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--pages", type=int, default=20, help="number of pages (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--forms", nargs="+", help="form ids (default: every form with a template)")
    ap.add_argument("--formats", nargs="+", choices=sorted(FORMATS), help="restrict output formats")
    ap.add_argument("--modes", nargs="+", choices=["color", "grey", "bw"], help="restrict scan modes")
    ap.add_argument("--dpi", nargs="+", type=int, help="restrict scan resolutions (default 150–300)")
    ap.add_argument("--allow-90", action="store_true", help="also feed some pages sideways (90°/270°)")
    ap.add_argument("--condition", default="scanner", choices=[*dmg.CONDITIONS, "mixed"],
                    help="how pages come back: scanner (default), phone photos, faxes, sideways, "
                         "fit-to-page prints, or mixed (the issue's shares, files mixing them too)")
    ap.add_argument("--replay", type=_replay_arg, metavar="BATCH[:PAGE]",
                    help="regenerate one batch (or one page of it) of this seed")
    ap.add_argument("--stacks", type=int, default=0,
                    help=f"also make this many stacks of photocopies of one printed form (batches "
                         f"{STACK_BATCH0}…; replay one with --replay {STACK_BATCH0})")
    ap.add_argument("--debug", action="store_true",
                    help="also write debug/: each sheet before the scan and the scan with its truth drawn")
    args = ap.parse_args(argv)
    if args.pages < 1:
        ap.error("--pages must be ≥ 1")
    cv2.setNumThreads(1)   # the converter threads and LibreOffice use the other core(s)
    options = Options(formats=tuple(args.formats) if args.formats else None,
                      modes=tuple(args.modes) if args.modes else None,
                      dpis=tuple(args.dpi) if args.dpi else None,
                      allow_90=args.allow_90, debug=args.debug, condition=args.condition,
                      stacks=args.stacks)
    index = run(args.out, args.pages, args.seed, args.forms, options=options, replay=args.replay)
    n = index["pages"]
    log(f"scanbench: {n} page(s) in {len(index['files'])} file(s) → {args.out} in {index['seconds']} s "
        f"({n / max(index['seconds'], 1e-9):.1f} pages/s); timing {index['timing']}")
    log(f"scanbench: seed {args.seed}; replay a page with --seed {args.seed} --replay BATCH:PAGE "
        f"(both in index.json and in each page's truth)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
