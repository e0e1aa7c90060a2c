"""Read a digital PDF without form fields: our rendered PDFs, or a DOCX edited and
saved as PDF by Word or LibreOffice, where lines reflow.

Boxes: the ☐/☒ glyphs are found in content order, each with the text printed
after it, and aligned by that text with the boxes the template prints (the
same sequence the layout map is made from). Alignment by label, not by
coordinates, survives reflow and small wording edits: an unmatched run of
boxes between two matched ones is paired by position only when both runs
have the same length, and otherwise goes to review.

Text fields: inside the zones of the layout map when the template version is
known (our own PDFs); otherwise found by their printed label.
"""

from __future__ import annotations

import difflib
import re
import threading
from dataclasses import dataclass

import numpy as np

from forms_service.catalogue import FormDefinition, catalogue
from forms_service.config import Settings
from forms_service.pdfpages import open_pdf
from forms_service.render.footer import footer_start, parse_footer
from forms_service.errors import BadDocument, UnknownForm
from forms_service.render.context import CHECKED, UNCHECKED, Mark, Recording

from . import pdf_marks
from .pdf_chars import Char, PageText, _base, _by_baseline, _mid, _runs, extract, norm
from .acroform import field_of, parse_date, written_choice
from .record import Reading
from .scan import decide
from .store import Store, fit_layout



def box_glyphs(data: bytes) -> list[tuple[int, list[float]]]:
    """(page, bbox) of the ☐/☒ glyphs of a PDF in content order: only those chars are
    measured (a few ms, where :func:`extract` measures every char)."""
    out = []
    with open_pdf(data) as doc:
        for i in range(len(doc)):
            page = doc[i]
            h = page.get_size()[1]
            tp = page.get_textpage()
            n = tp.count_chars()
            text = tp.get_text_range(0, n) if n else ""
            for j in range(min(n, len(text))):
                if text[j] in (CHECKED, UNCHECKED):
                    left, bottom, right, top = tp.get_charbox(j)
                    out.append((i + 1, [round(left, 1), round(h - top, 1), round(right, 1), round(h - bottom, 1)]))
            tp.close()
            page.close()
    return out


def identify(pages: list[PageText]) -> dict:
    """Form, version, document id and page numbers from the stamped footer line,
    else the form from its printed title."""
    ids = sorted((fd.id for fd in catalogue.forms()), key=len, reverse=True)
    for p in pages:
        footer = None
        # the footer's own line: in content order, the text drawn after it (a flattened
        # widget's value) would run on into the document id
        text = "\n".join("".join(c.text for c in line) for line in _by_baseline(p.chars))
        for form_id in ids:
            at = footer_start(text, form_id)
            if at >= 0:
                footer = parse_footer(text, at=at)
                break
        if footer:
            return {"form": footer.form, "version": footer.version, "document_id": footer.doc_id,
                    "identified_by": "text"}
    head = norm(" ".join(p.text for p in pages[:1]))
    best = None
    for fd in catalogue.forms():
        t = norm(fd.title)
        if t and t in head and (best is None or len(t) > len(norm(best.title))):
            best = fd
    if best is not None:
        return {"form": best.id, "version": None, "document_id": None, "identified_by": "content"}
    raise BadDocument("Formulaire non reconnu : ni pied de page du service, ni titre connu",
                      rule="formulaire_non_reconnu")


# -- boxes -----------------------------------------------------------------------

@dataclass
class Glyph:
    page: int
    checked: bool
    bbox: list[float]
    after: str          # the text printed after the box, up to the next box or the line's end
    #: what is drawn in the box, read from the rendered page (:mod:`parsers.pdf_marks`)
    #: when something is drawn over the glyphs of its page (a flattened PDF); else None
    drawn: object = None

    @property
    def state(self) -> str:
        """checked | empty | uncertain | corrected: the glyph ☒, or what is drawn over a ☐."""
        if self.checked:
            return "checked"
        return self.drawn.state if self.drawn is not None else "empty"


def glyphs(pages: list[PageText]) -> list[Glyph]:
    out = []
    for p in pages:
        chars = p.chars
        for i, c in enumerate(chars):
            if c.text not in (CHECKED, UNCHECKED):
                continue
            label = []
            prev_x = c.x1
            for d in chars[i + 1:i + 160]:
                if d.text in (CHECKED, UNCHECKED):
                    break
                mid = (d.top + d.bottom) / 2
                if d.text.strip() and not (c.top - 2 <= mid <= c.bottom + 2):
                    # the label goes on on the next line (a wrapped label) when that
                    # line starts back at the left; anything else ends it
                    if d.x0 < prev_x and mid < c.bottom + 14 and label:
                        label.append(" ")
                        c = Char(c.text, c.x0, d.top - 1, c.x1, d.bottom + 1)
                    else:
                        break
                label.append(d.text)
                prev_x = d.x1
            c = p.chars[i]
            out.append(Glyph(p.number, c.text == CHECKED,
                             [round(c.x0, 1), round(c.top, 1), round(c.x1, 1), round(c.bottom, 1)],
                             "".join(label)))
    return out


def _label(fd: FormDefinition, mark: Mark) -> str:
    f = field_of(fd, mark.path)
    if f is None:
        return ""
    if mark.value is True or f.type == "bool":
        return ""
    opt = f.option(str(mark.value))
    return opt.label if opt else str(mark.value)


_EXPECTED: dict[tuple, tuple[Mark, ...]] = {}
_EXPECTED_LOCK = threading.Lock()


def _expected(settings: Settings, form_id: str, rows_key: tuple) -> tuple[Mark, ...]:
    """The boxes the template prints, in order, for lists of the given row counts.

    Cached by (templates directory, form, rows): the box sequence depends on nothing else.
    """
    from forms_service.render.pipeline import render_docx
    key = (str(settings.templates_dir), form_id, rows_key)
    with _EXPECTED_LOCK:
        hit = _EXPECTED.get(key)
    if hit is not None:
        return hit
    fd = catalogue.get(form_id)
    rows = dict(rows_key)
    data = fd.model.model_validate({p: [{}] * n for p, n in rows.items() if n}).model_dump(mode="python")
    rec = Recording()
    render_docx(fd, data, settings=settings, document_id="", version="", for_pdf=True, record=rec)
    marks = tuple(m for m in rec.marks if m.kind == "box")
    with _EXPECTED_LOCK:
        if len(_EXPECTED) >= 64:
            _EXPECTED.pop(next(iter(_EXPECTED)))
        _EXPECTED[key] = marks
    return marks


def expected_boxes(fd: FormDefinition, n_found: int, settings: Settings) -> tuple[Mark, ...]:
    """The template's box sequence, with list rows chosen so the count matches what was found."""
    lists = [f for f in fd.fields if f.type == "list"]
    base = _expected(settings, fd.id, ())
    if not lists or len(base) == n_found:
        return base
    per_row = {f.path: sum(len(c.options) if c.type in ("choice", "multi") else 1
                           for c in f.item_fields if c.printed and c.type in ("choice", "multi", "bool"))
               for f in lists}
    steps = {f.path: (f.rows_per_page or 8) for f in lists}
    best = base
    # try page counts for each list (few lists, few pages)
    import itertools
    ranges = [range(1, 12) for _ in lists]
    for pages in itertools.product(*ranges):
        rows = {f.path: pages[i] * steps[f.path] for i, f in enumerate(lists)}
        guess = len(base) + sum(per_row[p] * (rows[p] - _blank_rows(f)) for f, p in zip(lists, rows))
        if guess == n_found:
            cand = _expected(settings, fd.id, tuple(sorted(rows.items())))
            if len(cand) == n_found:
                return cand
    return best


def _blank_rows(f) -> int:
    per = f.rows_per_page or 8
    return -(-max(f.min_rows, 1) // per) * per


def read_drawn_marks(data: bytes, pages: list[PageText], found: list[Glyph]) -> None:
    """Set each glyph's ``drawn`` state on the pages where marks are drawn over the boxes."""
    boxes = [(g.page, g.bbox) for g in found]
    stray = {p.number: [((c.x0 + c.x1) / 2, (c.top + c.bottom) / 2) for c in p.chars
                        if c.text.strip() and c.text not in (CHECKED, UNCHECKED)] for p in pages}
    overdrawn = pdf_marks.overdrawn_pages(boxes, {p.number: p.drawn for p in pages if p.drawn is not None}, stray)
    drawn = pdf_marks.drawn_states(data, boxes, overdrawn)
    for i, st in drawn.items():
        found[i].drawn = st


def _group(f, items: list[tuple[Mark, Glyph]]) -> Reading:
    """One field's boxes: the glyphs, or the scan's group rules where marks were drawn."""
    if any(g.drawn is not None for _, g in items):
        states = {(True if m.value is True or f.type == "bool" else m.value):
                  decide.BoxState("checked", 1.0) if g.checked else g.drawn or decide.BoxState("empty", 1.0)
                  for m, g in items}
        codes = [True] if f.type == "bool" else [m.value for m, _ in items]
        d = decide.decide_group(f.type, states, codes)
        ev = [{"page": g.page, "bbox": g.bbox, "state": g.state} for _, g in items if g.state != "empty"]
        return Reading(d.value, d.confidence, d.needs_review, ev, d.reason)
    ev = [{"page": g.page, "bbox": g.bbox} for _, g in items if g.checked]
    ticked = [m.value for m, g in items if g.checked]
    if f.type == "bool":
        return Reading(bool(ticked), 1.0, evidence=[{"page": g.page, "bbox": g.bbox} for _, g in items])
    if f.type == "multi":
        return Reading([c for c in f.codes if c in ticked], 1.0, evidence=ev)
    if len(ticked) <= 1:
        return Reading(ticked[0] if ticked else None, 1.0, evidence=ev)
    return Reading(None, 0.0, True, ev,
                   "Plusieurs cases cochées pour un choix unique : " + ", ".join(map(str, ticked)))


def read_boxes(fd: FormDefinition, found: list[Glyph], settings: Settings) -> tuple[dict[str, Reading], list[str]]:
    expected = expected_boxes(fd, len(found), settings)
    exp_labels = [norm(_label(fd, m))[:40] for m in expected]
    got_labels = [norm(g.after)[:40] for g in found]
    sm = difflib.SequenceMatcher(a=exp_labels, b=got_labels, autojunk=False)
    pairs: list[tuple[Mark, Glyph]] = []
    unsure: list[str] = []
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            pairs += list(zip(expected[i1:i2], found[j1:j2]))
        elif tag in ("replace", "delete"):
            unsure += [m.path for m in expected[i1:i2]]
    by_path: dict[str, list[tuple[Mark, Glyph]]] = {}
    for m, g in pairs:
        by_path.setdefault(m.path, []).append((m, g))
    readings: dict[str, Reading] = {}
    for path, items in by_path.items():
        readings[path] = _group(field_of(fd, path), items)
    for path in set(unsure) - set(readings):
        readings[path] = Reading(None, 0.0, True, [], "Case introuvable dans le document (modèle modifié ?)")
    return readings, unsure


# -- text fields ---------------------------------------------------------------------

#: how far (in font sizes) a text may run on past its zone's right edge: a value a widget
#: clipped when it was flattened is still there, and still the zone's
OVERFLOW_SIZES = 60


def _within(run: list[Char], x0: float, x1: float) -> list[Char]:
    """The chars of a run from the zone's left edge on, up to its right edge, or past it
    when the text goes on across the edge (it reaches the edge: a clipped value)."""
    out = []
    for c in run:
        centre = (c.x0 + c.x1) / 2
        if centre < x0 - 0.5:
            continue
        if centre > x1 + 0.5:
            size = c.size or 6
            if not out or out[-1].x1 < x1 - 0.3 * size or centre > x1 + OVERFLOW_SIZES * size:
                if c.text == " " and out:   # the space a line wraps at, past the edge: kept
                    out.append(c)
                break
        out.append(c)
    return out


@dataclass
class ZoneText:
    lines: list[str]
    #: why the text cannot be trusted as read (French), or None
    doubt: str | None = None

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def zone_text(page: PageText, bbox: list[float], others: list[list[float]] = (), *,
              flattened: bool = False, widget: int | None = None) -> ZoneText:
    """The text of a zone, top to bottom, with a doubt when it is not certainly whole.

    A run of text that starts in the zone is the zone's, whole: a value a widget clipped (a
    flattened PDF keeps the whole text, drawn past the edge) is read whole. A run that
    starts in another text zone (``others``) is that zone's: a date clipped at the right of
    one zone does not leak its last digit into the next. A run that starts outside any zone
    (the printed label before a value) gives the zone its chars from the zone's left edge on.
    A line ending with a hyphen that pdfium marks as a line-end hyphen (U+FFFE) is joined
    to the next. Doubts: texts drawn over each other; and for a value drawn by a flattened
    widget (``flattened``), whose writer wraps lines its own way, a line that may break a
    word (no space where it wraps) or the text going on under the zone.

    ``widget``: the flattened widget drawn over the zone (index in ``page.widgets``), when
    the chars say which widget drew them (:func:`pdf_marks.text_owner`): the zone's text is
    then that widget's, whole, and nothing else (pdf-lib clips a long value by a clip path
    only, so it runs over the next cells: their texts interleave with it); the text drawn
    by other widgets is never read into a zone that is not theirs.
    """
    if widget is not None:
        own = [c for c in page.chars if c.owner == widget]
        if any(c.text.strip() for c in own):
            return _widget_text(own)
    x0, y0, x1, y1 = bbox

    def starts_in(c: Char, b) -> bool:
        return b[0] - 0.5 <= (c.x0 + c.x1) / 2 <= b[2] + 0.5 and b[1] - 0.5 <= _mid(c) <= b[3] + 0.5

    mids = page.mids()
    band = [page.chars[i] for i in np.nonzero((mids >= y0 - 0.5) & (mids <= y1 + 0.5))[0]
            if page.chars[i].owner is None]   # (a widget's text is its own zone's)
    others = [o for o in others if o[1] <= y1 + 0.5 and o[3] >= y0 - 0.5]   # those beside it
    kept: list[list[Char]] = []
    cut = False
    for line in _by_baseline(band):
        chars: list[Char] = []
        for run in _runs(line):
            if starts_in(run[0], bbox):
                take = run
            elif any(starts_in(run[0], o) for o in others):
                continue
            else:
                take = run[next((i for i, c in enumerate(run) if (c.x0 + c.x1) / 2 >= x0 - 0.5), len(run)):]
            within = _within(take, x0, x1)
            chars += within
            if len(within) < len(take) and within and within[-1].x1 > x1 + 0.5 * OVERFLOW_SIZES * (within[-1].size or 6):
                cut = True   # a run so long it was cut at OVERFLOW_SIZES past the edge
        if chars:
            kept.append(chars)
    doubt = "Texte plus long que sa zone, coupé à la lecture : à vérifier d'après le document" if cut else None
    raw = ["".join(c.text for c in line) for line in kept]
    for line in kept:
        ink = [c for c in line if c.text.strip()]
        # (the chars of a ligature, « fi », share one box: that is no overlap)
        if any(b.x0 < a.x1 - 0.5 * (a.x1 - a.x0) and abs(b.x0 - a.x0) > 0.05 for a, b in zip(ink, ink[1:])):
            doubt = "Textes superposés : à vérifier d'après le document"
    for a, b in zip(raw, raw[1:]) if flattened else ():
        b = b.strip()
        if a and b and a[-1].isalpha() and b[0].isalpha():   # no space, no hyphen at the wrap
            doubt = doubt or "Retour à la ligne peut-être au milieu d'un mot : à vérifier"
    if kept and doubt is None and flattened:
        last = kept[-1]
        size = last[0].size or 6
        left = kept[0][0].x0
        under = [c for c in page.chars if c.text.strip() and abs((c.size or 6) - size) < 0.3
                 and y1 < _mid(c) and 0.8 * size <= _base(c) - _base(last[0]) <= 1.6 * size
                 and abs(c.x0 - left) < 2 and last[-1].x1 >= x1 - 3 * size]
        if under:
            doubt = "Texte plus long que sa zone : à vérifier d'après le document"
        first = kept[0][0]
        above = [c for c in page.chars if c.text.strip() and abs((c.size or 6) - (first.size or 6)) < 0.3
                 and _mid(c) < y0 and 0.8 * size <= _base(first) - _base(c) <= 1.6 * size
                 and abs(c.x0 - first.x0) < 2]
        if above and doubt is None:
            doubt = "Texte peut-être débordé de la zone au-dessus : à vérifier d'après le document"
    out: list[str] = []
    for t in (r.strip() for r in raw):
        if not t:
            continue
        if out and out[-1].endswith("\ufffe"):
            out[-1] = out[-1][:-1] + "-" + t
        else:
            out.append(t)
    return ZoneText([t.replace("\ufffe", "-") for t in out], doubt)


def _widget_text(chars: list[Char]) -> ZoneText:
    """The text one flattened widget drew, line by line, whole (its writer's own lines).

    A line wrapped after a hyphen is joined without a space (pdftk breaks « médico-social »
    there); a line wrapped between two letters is a doubt: pdf-lib drops the space it
    wraps at, pdftk cuts a word where the line is full (« Logistiq » « ue »), and the text
    cannot tell which.
    """
    found = [line for line in _by_baseline(chars) if "".join(c.text for c in line).strip()]
    raw = ["".join(c.text for c in line) for line in found]
    doubt = None
    for a, b in zip(raw, raw[1:]):
        b = b.lstrip()
        if a and b and a[-1].isalpha() and b[0].isalpha():   # no space, no hyphen at the wrap
            doubt = "Retour à la ligne peut-être au milieu d'un mot : à vérifier"
    for line in found:
        ink = [c for c in line if c.text.strip()]
        if any(b.x0 < a.x1 - 0.5 * (a.x1 - a.x0) and abs(b.x0 - a.x0) > 0.05 for a, b in zip(ink, ink[1:])):
            doubt = doubt or "Textes superposés : à vérifier d'après le document"
    out: list[str] = []
    for t in (r.strip().replace("\ufffe", "-") for r in raw):
        if out and out[-1].endswith("-") and t[:1].isalpha() and raw_ends_in_word(out[-1]):
            out[-1] += t
        else:
            out.append(t)
    return ZoneText(out, doubt)


def raw_ends_in_word(text: str) -> bool:
    """« médico- » (a hyphen after a letter) ends inside a compound word; « - » alone does not."""
    return len(text) >= 2 and text[-2].isalpha()


def _lines(page: PageText, bbox: list[float] | None = None) -> list[str]:
    """The text lines inside ``bbox`` (the whole page if None), top to bottom."""
    if bbox is None:
        bbox = [0.0, 0.0, page.width, page.height]
    return zone_text(page, bbox).lines


def _value_from_zone(f, text: str) -> tuple[str, str | None]:
    """The zone's value without its printed label, and a doubt (French) or None.

    Only a label printed with its colon (« Lieu : Arras ») is taken off: a value may begin
    with its label's words (`mds` « Maison du Département Solidarité de Lens-Liévin », label
    « Maison du Département Solidarité »; read « de Lens-Liévin » before). A zone that
    holds its bare label and nothing else is a doubt, never a confident value.
    """
    text = text.strip()
    label = f.label.rstrip(" :").strip()
    if not label:
        return text, None
    m = re.match(re.escape(label) + r"\s*:", text)
    if m:
        return text[m.end():].strip(), None
    if text == label:
        return "", "Seul le libellé du champ est lu dans sa zone : à vérifier d'après le document"
    return text, None


def read_texts(fd: FormDefinition, pages: list[PageText], layout: dict | None) -> dict[str, Reading]:
    readings: dict[str, Reading] = {}
    if not layout:
        return readings
    by_page = {p.number: p for p in pages}
    for z in layout.get("zones", []):
        if z["kind"] != "text":
            continue
        f = field_of(fd, z["path"])
        page = by_page.get(z["page"])
        if f is None or page is None:
            continue
        others = [o["bbox"] for o in layout["zones"] if o is not z and o["page"] == z["page"] and o["kind"] == "text"]
        widget = pdf_marks.widget_over(z["bbox"], page.widgets) if any(c.owner is not None for c in page.chars) \
            else None
        zt = zone_text(page, z["bbox"], others, widget=widget,
                       flattened=widget is not None or pdf_marks.covered(z["bbox"], page.widgets))
        value, label_doubt = _value_from_zone(f, zt.text)
        if label_doubt:
            readings[z["path"]] = Reading(None, 0.0, True, [{"page": z["page"], "bbox": z["bbox"]}], label_doubt)
            continue
        ev = [{"page": z["page"], "bbox": z["bbox"]}]
        if f.type == "date":
            if not value:
                readings[z["path"]] = Reading(None, 1.0, evidence=ev)
            else:
                # a date a writer wrapped inside its narrow cell (pdftk: « 01/04/20 » « 11 »)
                d = parse_date(value) or (parse_date("".join(zt.lines)) if len(zt.lines) > 1 else None)
                readings[z["path"]] = Reading(d, 1.0, evidence=ev) if d else \
                    Reading(None, 0.0, True, ev, f"Date illisible « {value[:20]} »")
        elif f.type == "code":
            code = value.split(" – ")[0].strip() if value else None
            readings[z["path"]] = Reading(code or None, 1.0, evidence=ev)
        elif f.type in ("choice", "multi"):
            readings[z["path"]] = written_choice(f, value, ev)
        elif f.type == "integer":
            readings[z["path"]] = Reading(int(value) if value.isdigit() else None,
                                          1.0 if (not value or value.isdigit()) else 0.0,
                                          bool(value) and not value.isdigit(), ev)
        else:
            readings[z["path"]] = Reading(value or None, 1.0, evidence=ev)
        r = readings[z["path"]]
        if zt.doubt and value and not r.needs_review:
            readings[z["path"]] = Reading(r.value, 0.5, True, ev, zt.doubt)
    return readings


REEXPORTED_TEXT = ("Document sans le pied de page du service (DOCX modifié puis réexporté ?) : "
                   "texte à vérifier d'après le document")


def read_relocated_texts(fd: FormDefinition, pages: list[PageText], layout: dict | None,
                         settings: Settings) -> dict[str, Reading]:
    """Text zones of a PDF whose lines moved (:mod:`parsers.pdf_relocate`): those placed
    again by their labels are read; the others go to review (REEXPORTED_TEXT)."""
    from . import pdf_relocate

    if not layout:
        return {}
    zones = [z for z in layout.get("zones", []) if z["kind"] == "text"]
    blank = pdf_relocate.blank_runs(settings.templates_dir, fd.id, layout.get("template_version"))
    moved = pdf_relocate.relocate(zones, blank, pdf_relocate.runs(pages)) if blank else {}
    readings = read_texts(fd, pages, {"zones": list(moved.values())})
    for i, z in enumerate(zones):
        if i not in moved and field_of(fd, z["path"]) is not None:
            readings[z["path"]] = Reading(None, 0.0, True, [{"page": z["page"], "bbox": z["bbox"]}],
                                          REEXPORTED_TEXT)
    return readings


def parse_pdf_text(data: bytes, store: Store) -> dict | None:
    """Readings of a digital PDF, or None when it has no text layer (a scan).

    ``store`` gives the layout the PDF was printed with (its text zones) and the settings
    (the templates whose box sequence is matched).
    """
    pages = extract(data)
    if not any(p.chars for p in pages):
        return None
    found = glyphs(pages)
    read_drawn_marks(data, pages, found)
    ident = identify(pages)
    try:
        fd = catalogue.get(ident["form"])
    except UnknownForm:
        raise BadDocument(f"Formulaire inconnu « {ident['form']} »", rule="formulaire_non_reconnu") from None
    readings, unsure = read_boxes(fd, found, store.settings)
    blank_layout = store.layout_for(fd, ident["version"], ident["document_id"])
    layout = None
    if blank_layout:   # where this very PDF printed its boxes (data can move them from the blank's)
        layout = fit_layout(blank_layout, [(g.page, g.bbox) for g in found])
    if ident["identified_by"] == "content":
        # no footer of ours: a DOCX edited and exported again (or printed to PDF
        # elsewhere): its lines moved, so the layout's zones may hold other text or none
        # (issue 15: 2 to 57 fields confidently wrong). Boxes are matched by their labels;
        # text zones are placed again by the labels around them, else go to review
        texts = read_relocated_texts(fd, pages, blank_layout, store.settings)
    else:
        texts = read_texts(fd, pages, layout)
    readings.update({k: v for k, v in texts.items() if k not in readings})
    return {"form": fd, "template_version": ident["version"], "document_id": ident["document_id"],
            "readings": readings, "page_count": len(pages), "identified_by": ident["identified_by"]}
