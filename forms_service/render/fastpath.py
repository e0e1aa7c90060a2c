"""The PDF fast path: a document's values written onto LibreOffice's own blank print.

LibreOffice takes ~0.5 s of CPU to lay out and export a 3-page form; most documents only
put short values in boxes and zones whose place does not depend on the values. For such
a document the PDF is made without LibreOffice:

1. **Once per template version and rows printed** (:func:`probe_for`, cached): five
   renders of the form's blank data (:func:`layout.probe_data`), converted by the pool in
   parallel: the *blank* print (derived texts empty); two *probes* where every printed
   value is a marker ``XQ<n>QX`` (``n``: the index of the value among the marks the
   template prints) in the value's own run, the second with a longer marker
   ``XQ<n>QX000``; the *line probe*, each marker followed by a long word
   (:data:`LONG_TAIL`) that LibreOffice breaks where the zone's line is full; and the
   *base*: the blank with its boxes ☒ and ☐ in turn. From the probes' text spans (PyMuPDF)
   each value's baseline origin, font (the installed file of the font the PDF names), size
   and colour, and its alignment (which edge of the marker stays put between the two
   probes); a marker whose advance is not the font's (letter spacing, scaling) or that
   wrapped is not probed. From the line probe, for a left-aligned value (:func:`_line_probe`):
   the scale of LibreOffice's advances against HarfBuzz's (fitted on the first line),
   where the line breaks, the next line's start and pitch, and how many lines its zone
   holds. A page whose labels are not exactly where the blank has them once every value is
   printed (a value taller than its line) gets no value slots; markers wider than their
   zone (narrow columns), which may be what moved it or pushed a table to the next page,
   are then printed empty in a second round of the three marker probes. The blank's ☐
   glyphs must match the layout map's boxes one to one, and the base's labels the blank's.
   The base gets each value font embedded once (a subset: :data:`CHARSET`), and the places
   of its ☐/☒ codes in its content streams are noted (:func:`_box_codes`), and where each
   value goes in them (:func:`_value_places`: LibreOffice's content order). A text a filter
   makes from data (:class:`Derived`, « Prénom NOM ») is a value like the others: it gets a
   slot when it has a line of its own (the line probe's edge), else it falls back. The
   probe is kept on disk per template version (``fastpath_store``).
2. **Per document** (:func:`fast_pdf`): a *skeleton* render of the document's data (every
   value printed empty, every box ☐) must equal the probe data's skeleton: same template
   branches, same rows, nothing printed outside a value (derived text, conditionals). Each
   value's text is what the template prints (filters applied); it must be probed, every
   character in its font's subset, and fit: broken into lines as LibreOffice breaks them
   (greedy, at spaces, each line ending clear of the line probe's bracket on the edge, no
   word LibreOffice could break inside moved to a next line), no more lines than the zone
   holds — or, without a line probe, one line at most :data:`MAX_RUN_PT` wide within its
   zone less a margin. Then each box's code is set to ☒ or ☐ in LibreOffice's own content
   stream (content order kept: readers take the i-th glyph for the i-th box, and its label
   from what follows), and the values are written, shaped as LibreOffice shapes them
   (HarfBuzz: ligatures, no pair kerning, LibreOffice's scale), glyph by glyph at absolute
   positions, each where LibreOffice would have drawn it in the page's content (pikepdf;
   the base's pages parsed once per probe, :func:`_segments`).

Anything else — a value not probed (its marker wrapped or was split), a character the
font lacks, a text that would wrap past its zone, more rows than the print holds (another probe is made
for that row count), a template whose probe failed — returns ``None`` with a reason code,
and the caller converts the DOCX with LibreOffice as before. The check errs towards
LibreOffice: a wrong fast print is worse than a slow one.

The module knows no form and no template detail: it works from the catalogue's
definitions, the current templates and LibreOffice's prints of them. Settings:
``PDF_FAST_PATH`` (``settings.pdf_fast_path``, on by default) turns it off.
See ``docs/pdf-conversion.md`` (the route, what was measured, the proofs).
"""

from __future__ import annotations

import contextvars
import io
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

from ..catalogue import FormDefinition
from ..config import Settings
from . import context as ctxmod
from .context import CHECKED, UNCHECKED, Mark, Val
from .docx import DocxRenderer
from .layout import PROBE_DOCUMENT_ID, probe_data
from .layout_glyphs import _font_file
from .pipeline import render_context, render_docx, template_path

log = logging.getLogger(__name__)

#: A value's marker in the probes; the second probe pads it (alignment).
MARKER_RE = re.compile(r"(?:XQ(\d+)QX|(?<![X\d])Q(\d+)Q)(0*)")   # or short: ``Q<n>Q``


def _n(m: re.Match) -> int:
    """The mark index of a marker match."""
    return int(m.group(1) or m.group(2))
PAD = "000"
#: The line probe's tail after a marker: narrow letters (tight bounds on where a line
#: breaks), mixed (the fitted scale is text's, not one glyph's), no ligature, no break
#: opportunity, none of the marker's letters.
LONG_TAIL = "rstjaeno"


def _tail(k: int) -> str:
    return (LONG_TAIL * (k // len(LONG_TAIL) + 1))[:k]


#: Points: a line's end must be this far from where the line probe broke (either side).
BREAK_TOL = 0.1
#: Points: the widest line written with a scale fitted on LibreOffice's line probe (its
#: residual measured over the zone's whole line); without the fit, :data:`MAX_RUN_PT`.
MAX_FITTED_PT = 560.0
#: Points: the largest residual of the line probe's fit accepted for a slot.
FIT_RESIDUAL = 0.08
#: Points: a value must end this far inside its zone (a table cell's inner margin is 5.4 pt).
FIT_MARGIN = 6.0
#: Points: label positions of the blank print and the probe must agree within this.
GEOMETRY_TOL = 0.05
#: Points: tolerance on a marker's edges between the probes and on its advance width.
EDGE_TOL = 0.3
#: Points: the widest value written. LibreOffice rounds each glyph's advance in its own
#: layout units, so its glyphs drift from HarfBuzz's positions along a run: measured on the
#: blank prints of the DSP and the fiche de liaison (112 runs of 80–500 pt), 0.13–0.15 pt
#: per 100 pt at the median, 0.17 at the 90th percentile. 180 pt keeps the drift near
#: 0.3 pt, under a pixel at 150 dpi (0.48 pt). The width is HarfBuzz's advance, so the rule
#: is the same at every font size (it was 32 characters before).
MAX_RUN_PT = 180.0
#: Characters never written by the fast path (LibreOffice handles them).
_REFUSED = set("\n\r\t\v\f\u00a0\u00ad\u2028\u2029")


# --------------------------------------------------------------------------- renders

class _Skeleton:
    """Skeleton mode: values print empty, boxes ☐; the marks and their printed text are kept."""

    def __init__(self):
        self.marks: list[tuple[str, str, object, bool, str]] = []  # kind, path, code, checked, text


class _Probe:
    """Probe mode: values print their marker ``XQ<n>QX`` (+ pad), boxes as in the data.
    With ``long`` (path -> characters), each value's marker is followed by that many
    letters of :data:`LONG_TAIL`, one word that wraps in its zone (the *line* probe)."""

    def __init__(self, pad: str, long: dict | None = None, skip: dict | None = None):
        self.pad = pad
        self.long = long
        self.skip = skip or {}     # mark index -> "short" (marker ``Q<n>Q``) or "empty"
        self.n = 0


#: PyMuPDF is not thread-safe: every use of it here holds this lock.
_MUPDF = threading.RLock()

class _Boxes:
    """Base mode: values print empty, boxes alternate ☒ / ☐ (both glyphs in the print's
    font subset, so that a document's boxes are set by changing one code each)."""

    def __init__(self):
        self.n = 0


class _Blank:
    """Blank mode: the probe data printed as usual, but derived texts empty (the blank
    print's labels are then those of the probes and the base)."""


_mode: contextvars.ContextVar = contextvars.ContextVar("fastpath_mode", default=None)


def _finalize(value):
    mode = _mode.get()
    if mode is None:
        return ctxmod.finalize(value)
    if isinstance(mode, _Skeleton):
        if isinstance(value, Mark):
            mode.marks.append((value.kind, value.path, value.value, value.checked, ""))
            return UNCHECKED if value.kind == "box" else ""
        if isinstance(value, Val) and not isinstance(value.value, list):
            mode.marks.append(("text", value.path, "derived" if isinstance(value, Derived) else None,
                               False, str(value)))
            return ""
        return ctxmod.finalize(value)
    if isinstance(mode, _Blank):
        return "" if isinstance(value, Derived) else ctxmod.finalize(value)
    if isinstance(mode, _Boxes):
        if isinstance(value, Mark):
            mode.n += 1
            if value.kind == "box":
                return CHECKED if mode.n % 2 else UNCHECKED
            return str(value)
        if isinstance(value, Val) and not isinstance(value.value, list):
            return ""
        return ctxmod.finalize(value)
    if isinstance(value, Mark):
        mode.n += 1
        return str(value)
    if isinstance(value, Val) and not isinstance(value.value, list):
        n = mode.n
        mode.n += 1
        if mode.skip.get(n) == "empty":
            return ""
        head = f"Q{n}Q" if mode.skip.get(n) == "short" else f"XQ{n}QX"
        if mode.long is not None:
            return head + _tail(mode.long.get(value.path, 200))
        return head + (mode.pad[:1] if mode.skip.get(n) == "short" else mode.pad)
    return ctxmod.finalize(value)


class Derived(Val):
    """A text a filter makes from data (« Prénom NOM » of a group): a value of its own for
    the fast path — printed empty in the skeleton, the blank and the base, as a marker in
    the probes — so that data changing it is a value, not a different skeleton. It gets a
    slot when the line probe finds its line's edge (a name on the rest of its line); in
    running text it has none (``not_probed``: it would reflow the paragraph).
    ``path``: the filter's argument (a group's path)."""

    __slots__ = ()


def _derived_filter(fn):
    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        if type(out) is str:       # plain text made from data (not markup, a Val or a Mark)
            arg = next((a for a in args if hasattr(a, "path")), None)
            return Derived(getattr(arg, "path", "?"), out)
        return out
    for attr in ("jinja_pass_arg",):
        if hasattr(fn, attr):
            setattr(wrapped, attr, getattr(fn, attr))
    return wrapped


def _make_renderer() -> DocxRenderer:
    r = DocxRenderer()
    r.env.finalize = _finalize   # read when a template is compiled: this renderer's own cache
    r.env.filters.update({name: _derived_filter(fn) for name, fn in r.env.filters.items()
                          if name in ctxmod.make_env().filters})
    return r


_renderer = _make_renderer()


def skeleton(fd: FormDefinition, dump: dict, *, settings: Settings, version: str,
             derived: dict | None) -> tuple[tuple[str, ...], list]:
    """The rendered XML parts with every value empty and every box ☐, and the marks."""
    ctx, _ = render_context(fd, dump, settings=settings, document_id=PROBE_DOCUMENT_ID,
                            version=version, derived=derived, for_pdf=True)
    ct = _renderer.compiled(template_path(fd, settings))
    mode = _Skeleton()
    token = _mode.set(mode)
    try:
        parts = tuple(part.template.render(ctx) for part in ct.parts.values())
    finally:
        _mode.reset(token)
    return parts, mode.marks


def _markers_docx(fd, data, *, settings, version, longs: dict, skip: dict) -> list[bytes]:
    """Probes A, B (padded markers) and the line probe; ``skip``: values with a short
    marker or none (mark index -> "short" | "empty")."""
    return [_probe_docx(fd, data, settings=settings, version=version, pad=pad, long=long,
                        skip=skip) for pad, long in (("", None), (PAD, None), (None, longs))]


def _probe_docx(fd, data, *, settings, version, pad: str | None,
                long: dict | None = None, skip: dict | None = None) -> bytes:
    """A probe (markers ``XQ<n>QX`` + ``pad``; with ``long``, the line probe), or with
    ``pad=None`` the base print, or with ``pad="blank"`` the blank print."""
    if pad == "blank":
        mode = _Blank()
    elif pad is not None or long is not None:
        mode = _Probe(pad or "", long, skip or {})
    else:
        mode = _Boxes()
    token = _mode.set(mode)
    try:
        return render_docx(fd, data, settings=settings, document_id=PROBE_DOCUMENT_ID,
                           version=version, for_pdf=True, docx_renderer=_renderer)
    finally:
        _mode.reset(token)


# --------------------------------------------------------------------------- fonts

@lru_cache(maxsize=32)
def _font(path: str):
    import pymupdf

    with _MUPDF:
        return pymupdf.Font(fontfile=path)


@lru_cache(maxsize=32)
def _shaper(path: str):
    import uharfbuzz as hb

    with open(path, "rb") as fh:
        face = hb.Face(fh.read())
    return hb.Font(face), face.upem


def shape(path: str, text: str, size: float) -> tuple[list[tuple[str, float]], float] | None:
    """:func:`_shape`, cached (names, words and lines recur from one document to the next)."""
    return _shape(path, text, size)


@lru_cache(maxsize=8192)
def _shape(path: str, text: str, size: float) -> tuple[list[tuple[str, float]], float] | None:
    """Each character of ``text`` and its x offset (points) as LibreOffice lays the run out
    (HarfBuzz, LibreOffice's own shaper: ligatures, no pair kerning — a DOCX run kerns only
    with ``w:kern``, and LibreOffice then prints a different advance, which the probe
    check below refuses), and the
    run's advance. A ligature's characters are spread over its advance (the ligature glyph
    itself has no character to write). ``None`` for what is not a plain horizontal run
    (marks moved vertically, glyphs out of order)."""
    import uharfbuzz as hb

    font, upem = _shaper(path)
    buf = hb.Buffer()
    buf.add_str(text)
    buf.guess_segment_properties()
    hb.shape(font, buf, {"kern": False})   # Word documents: no pair kerning unless asked
    scale = size / upem
    infos, positions = buf.glyph_infos, buf.glyph_positions
    clusters = [i.cluster for i in infos]
    if clusters != sorted(clusters) or any(p.y_offset for p in positions):
        return None
    out: list[tuple[str, float]] = []
    pen = 0.0
    for g, (info, pos) in enumerate(zip(infos, positions)):
        start = info.cluster
        end = clusters[g + 1] if g + 1 < len(clusters) else len(text)
        if end <= start:          # a second glyph in the same cluster: nothing to write
            pen += pos.x_advance * scale
            continue
        chars = text[start:end]
        nominal = [font.get_glyph_h_advance(font.get_nominal_glyph(ord(c)) or 0) for c in chars]
        total = sum(nominal) or 1
        x = pen + pos.x_offset * scale
        for c, adv in zip(chars, nominal):
            out.append((c, x))
            x += pos.x_advance * scale * adv / total
        pen += pos.x_advance * scale
    return out, pen


#: font file -> the PostScript name LibreOffice's PDF gives it (``Carlito-Bold``)
_PS_NAMES: dict[str, str] = {}


def _font_path(pdf_font_name: str) -> str | None:
    ps_name = pdf_font_name.split("+", 1)[-1]
    path = _font_file(ps_name)
    if path:
        _PS_NAMES[path] = ps_name
    return path


def _rename_fonts(doc, paths: set[str]) -> None:
    """Give the fonts MuPDF embedded the PostScript names LibreOffice gives them (MuPDF
    names a font ``Carlito Regular``): readers find a font's file by that name (the layout
    map's glyph squares, ``layout_glyphs``)."""
    names = {_font(p).name: _PS_NAMES[p] for p in paths if p in _PS_NAMES}
    seen: set[int] = set()
    for page in doc:
        for xref, _ext, kind, basefont, *_ in page.get_fonts():
            if kind != "Type0" or xref in seen:
                continue
            seen.add(xref)
            prefix, _, name = basefont.rpartition("+")
            if name not in names:
                continue
            new = f"/{prefix + '+' if prefix else ''}{names[name]}"
            doc.xref_set_key(xref, "BaseFont", new)
            for desc in re.findall(r"(\d+) 0 R", doc.xref_get_key(xref, "DescendantFonts")[1]):
                doc.xref_set_key(int(desc), "BaseFont", new)
                kind_fd, fd_ref = doc.xref_get_key(int(desc), "FontDescriptor")
                if kind_fd == "xref":
                    doc.xref_set_key(int(fd_ref.split()[0]), "FontName", new)


def _same_metrics(doc) -> None:
    """Give the fonts MuPDF embedded the metrics LibreOffice's font descriptor of the same
    font gives (``Ascent``, ``Descent``, ``FontBBox``; LibreOffice writes 0 and 0): PDF
    readers (pdfplumber) place a glyph's box from them, and the layout map of the print
    must be LibreOffice's to the tenth of a point."""
    descriptors: dict[str, int] = {}
    ours = []
    for xref in range(1, doc.xref_length()):
        if doc.xref_get_key(xref, "Type")[1] != "/FontDescriptor":
            continue
        name = doc.xref_get_key(xref, "FontName")[1].lstrip("/")
        prefix, _, ps = name.rpartition("+")
        if re.fullmatch(r"[A-Z]AAAAA", prefix):
            descriptors.setdefault(ps, xref)     # LibreOffice's subsets: BAAAAA+, CAAAAA+…
        else:
            ours.append((xref, ps))
    for xref, ps in ours:
        theirs = descriptors.get(ps)
        if theirs is None:
            continue
        for key in ("Ascent", "Descent", "FontBBox"):
            kind, value = doc.xref_get_key(theirs, key)
            if kind != "null":
                doc.xref_set_key(xref, key, value)


# --------------------------------------------------------------------------- probe

@dataclass
class Slot:
    """Where and how LibreOffice prints one value."""

    page: int                 # 0-based
    x: float                  # the anchor: left edge, centre or right edge (PyMuPDF coords)
    y: float                  # baseline, from the top of the page
    align: str                # "left" | "centre" | "right"
    font: str                 # font file
    size: float
    color: tuple[float, float, float]
    left: float               # the value must stay within [left, right]
    right: float
    #: from the line probe (a left-aligned value in its zone): the scale of LibreOffice's
    #: advances against HarfBuzz's; where a line breaks (a line ending before ``cap`` fits,
    #: one ending after ``cap_hi`` does not); where the next lines start, their pitch, and
    #: how many lines the zone holds without moving anything (1: one line only)
    scale: float = 1.0
    cap: float = 0.0
    cap_hi: float = 0.0
    next_x: float = 0.0
    pitch: float = 0.0
    lines: int = 1


@dataclass
class BoxSlot:
    page: int
    x: float
    y: float
    font: str
    size: float
    color: tuple[float, float, float]


@dataclass
class Probe:
    """What the fast path knows of one template version and row count."""

    form: str
    version: str
    ok: bool
    reason: str = ""
    skeleton: tuple[str, ...] = ()
    kinds: tuple[tuple[str, str], ...] = ()      # (kind, path) of each mark, in order
    slots: dict[int, Slot] = field(default_factory=dict)   # mark index -> slot (text marks)
    boxes: dict[int, BoxSlot] = field(default_factory=dict)  # mark index -> box
    base: bytes = b""
    stable: set[int] = field(default_factory=set)   # pages whose slots are valid (0-based)
    #: font file -> (object number of its font in ``base``, resource name, codepoints it
    #: holds, codepoint -> character code in the subset)
    fonts: dict[str, tuple] = field(default_factory=dict)
    heights: list[float] = field(default_factory=list)   # page heights (PDF y is bottom-up)
    #: per page: the indexes of the content instructions showing boxes, and each box's
    #: place in them; the codes of ☐ and ☒ in their font (see :func:`_box_codes`)
    box_codes: dict | None = None
    #: mark index -> instruction index of the base page's content before which LibreOffice
    #: would have drawn the value (its content order; see :func:`_value_places`)
    places: dict[int, int] = field(default_factory=dict)
    #: mark index -> a derived text as the base prints it (the probe data's)
    printed: dict[int, str] = field(default_factory=dict)
    build_ms: float = 0.0
    source: str = "built"     # "built" in this process, or "disk" (``fastpath_store``)


def _chars(pdf: bytes) -> list[list[dict]]:
    """Every char of every page: text, origin, bbox, font, size, colour, and its line key."""
    import pymupdf

    pages = []
    with _MUPDF, pymupdf.open("pdf", pdf) as doc:
        for page in doc:
            out = []
            raw = page.get_text("rawdict", flags=pymupdf.TEXT_PRESERVE_WHITESPACE)
            for b, block in enumerate(raw["blocks"]):
                for li, line in enumerate(block.get("lines", ())):
                    for span in line["spans"]:
                        for ch in span["chars"]:
                            out.append({"c": ch["c"], "x": ch["origin"][0], "y": ch["origin"][1],
                                        "bbox": ch["bbox"], "font": span["font"],
                                        "size": span["size"], "color": span["color"],
                                        "line": (b, li)})
            pages.append(out)
    return pages


def _rgb(color: int) -> tuple[float, float, float]:
    return ((color >> 16 & 255) / 255, (color >> 8 & 255) / 255, (color & 255) / 255)


def _markers(pages: list[list[dict]]) -> tuple[dict[int, dict], set[tuple[int, int]]]:
    """Each marker ``n`` found whole on one line in one font: its chars; and the (page,
    char index) of every marker char (to leave them out of the label comparison)."""
    found: dict[int, dict] = {}
    seen: dict[int, int] = {}
    used: set[tuple[int, int]] = set()
    for p, chars in enumerate(pages):
        lines: dict[tuple, list[int]] = {}
        for i, ch in enumerate(chars):
            lines.setdefault(ch["line"], []).append(i)
        for idx in lines.values():
            text = "".join(chars[i]["c"] for i in idx)
            for m in MARKER_RE.finditer(text):
                ids = idx[m.start():m.end()]
                used.update((p, i) for i in ids)
                n = _n(m)
                seen[n] = seen.get(n, 0) + 1
                cs = [chars[i] for i in ids]
                if len({(c["font"], round(c["size"], 2), round(c["y"], 2)) for c in cs}) != 1:
                    continue
                found[n] = {"page": p, "chars": cs, "text": m.group(0)}
        # a marker broken over lines (it wrapped in a narrow zone): its chars are no labels
        order = sorted(range(len(chars)), key=lambda i: chars[i]["line"])
        text = "".join(chars[i]["c"] for i in order)
        for m in MARKER_RE.finditer(text):
            ids = [order[k] for k in range(m.start(), m.end())]
            if not all((p, i) in used for i in ids):
                used.update((p, i) for i in ids)
                seen[_n(m)] = seen.get(_n(m), 0) + 2
    # a marker printed twice (a value repeated) or broken over lines is not probed
    return {n: f for n, f in found.items() if seen[n] == 1}, used


def _labels(pages: list[list[dict]], skip: set[tuple[int, int]]) -> list[tuple]:
    out = []
    for p, chars in enumerate(pages):
        for i, ch in enumerate(chars):
            if (p, i) in skip or ch["c"] in (CHECKED, UNCHECKED) or ch["c"].isspace():
                continue
            out.append((p, ch["c"], ch["y"], ch["x"]))
    return sorted(out, key=lambda t: (t[0], round(t[2], 1), round(t[3], 1), t[1]))


def _same_geometry(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    return all(pa == pb and ca == cb and abs(ya - yb) <= GEOMETRY_TOL and abs(xa - xb) <= GEOMETRY_TOL
               for (pa, ca, ya, xa), (pb, cb, yb, xb) in zip(a, b))


def _zone_for(layout: dict, path: str, page: int, x: float, y: float) -> list | None:
    """The layout map's zone of ``path`` holding the point (PyMuPDF coords = top-left)."""
    best = None
    for z in layout.get("zones", ()):
        if z["path"] != path or z["page"] != page + 1:
            continue
        x0, top, x1, bottom = z["bbox"]
        if x0 - 2 <= x <= x1 + 2 and top - 2 <= y <= bottom + 4:
            best = z["bbox"]
    return best


def _slot(n: int, a: dict, b: dict | None, path: str, layout: dict,
          derived: bool = False) -> Slot | None:
    """The slot of value ``n`` from its markers in probes A and B. A derived text (no zone
    in the layout map) gets one only left-aligned, bounded by the line probe."""
    ca = a["chars"]
    first = ca[0]
    font = _font_path(first["font"])
    if font is None:
        return None
    size = first["size"]
    x0a, x1a = first["x"], ca[-1]["bbox"][2]
    # the marker's advance in the font file must be what LibreOffice printed (no kerning,
    # letter spacing or scaling on this run)
    shaped = shape(font, a["text"], size)
    if shaped is None or abs(shaped[1] - (x1a - x0a)) > EDGE_TOL:
        return None
    if b is None or b["page"] != a["page"] or abs(b["chars"][0]["y"] - first["y"]) > GEOMETRY_TOL:
        return None
    cb = b["chars"]
    x0b, x1b = cb[0]["x"], cb[-1]["bbox"][2]
    grow = (x1b - x0b) - (x1a - x0a)
    if abs(x0b - x0a) <= EDGE_TOL:
        align, anchor = "left", x0a
    elif abs(x1b - x1a) <= EDGE_TOL:
        align, anchor = "right", x1a
    elif abs((x0a - x0b) - grow / 2) <= EDGE_TOL:
        align, anchor = "centre", (x0a + x1a) / 2
    else:
        return None
    zone = _zone_for(layout, path, a["page"], x0a, first["y"])
    if zone is None and derived and align == "left":
        zone = [x0a, first["y"], float("inf"), first["y"]]
    if zone is None:
        return None
    return Slot(a["page"], anchor, first["y"], align, font, size, _rgb(first["color"]),
                zone[0] + FIT_MARGIN if align != "left" else x0a - 0.01, zone[2] - FIT_MARGIN)


def _line_probe(slot: Slot, n: int, pages: list[list[dict]], zone: list | None,
                tail: int, short: bool = False) -> None:
    """Complete a left-aligned ``slot`` from the line probe, where value ``n`` printed its
    marker and a long word (:data:`LONG_TAIL`) that LibreOffice broke where the line was
    full: the scale of LibreOffice's advances against HarfBuzz's (fitted on the first
    line), where the line breaks (``cap``, ``cap_hi``), the next line's start and pitch,
    and how many lines the zone holds (its bottom). Left as it is (one line, the zone's
    bounds) when the probe does not show that clearly."""
    head = f"Q{n}Q" if short else f"XQ{n}QX"
    pattern = re.compile(("(?<![X0-9])" if short else "") + re.escape(head) + "(?![X0-9])")
    hits = []
    for p, chars in enumerate(pages):
        order = sorted(range(len(chars)), key=lambda i: chars[i]["line"])
        text = "".join(chars[i]["c"] for i in order)
        for m in pattern.finditer(text):
            hits.append((p, [chars[i] for i in order[m.start():]]))
    if len(hits) != 1:
        return
    _p, seq = hits[0]
    want = head + _tail(tail)
    if "".join(c["c"] for c in seq[:len(want)]) != want:
        return
    seq = seq[:len(want)]
    y1 = seq[0]["y"]
    first = [c for c in seq if abs(c["y"] - y1) <= GEOMETRY_TOL]
    rest = seq[len(first):]
    if len(first) < len(head) + 4 or not rest or seq[:len(first)] != first:
        return
    if rest[0]["y"] <= y1 + 1 or any(c["font"] != seq[0]["font"] or abs(c["size"] - seq[0]["size"]) > 0.01
                           for c in seq):
        return
    # a value after a label (« Monsieur … »): the long word went whole to the next line,
    # so every line of the probe is a next line (same paragraph: the same edge)
    moved = abs(first[0]["x"] - slot.x) > EDGE_TOL
    shaped = shape(slot.font, "".join(c["c"] for c in first), slot.size)
    if shaped is None or len(shaped[0]) != len(first):
        return
    hb = [dx for _c, dx in shaped[0]]
    lo = [c["x"] - first[0]["x"] for c in first]
    scale = sum(a * b for a, b in zip(lo, hb)) / (sum(b * b for b in hb) or 1)
    if max(abs(a - scale * b) for a, b in zip(lo, hb)) > FIT_RESIDUAL or abs(scale - 1) > 0.01:
        return
    # the long word's lines: every full one ends at the line's edge, which lies between
    # its last glyph's end and that plus the next line's first glyph's advance
    rows: list[list[dict]] = [first]
    for c in rest:
        if abs(c["y"] - rows[-1][0]["y"]) > GEOMETRY_TOL:
            if c["y"] <= rows[-1][0]["y"]:
                return          # a line on another column or page: not one zone's lines
            rows.append([])
        rows[-1].append(c)

    def adv(c: str) -> float:
        one = shape(slot.font, c, slot.size)
        return scale * one[1] if one else slot.size

    if len(rows) < 2:
        return
    cap = max(r[-1]["x"] + adv(r[-1]["c"]) for r in rows[:-1])
    cap_hi = min(r[-1]["x"] + adv(r[-1]["c"]) + adv(nxt[0]["c"]) for r, nxt in zip(rows, rows[1:]))
    next_x = rows[0 if moved else 1][0]["x"]
    if cap > cap_hi or any(abs(r[0]["x"] - next_x) > EDGE_TOL for r in rows[0 if moved else 1:]):
        return
    if zone is None or cap > zone[2] + 1.0:
        return      # (a derived text's zone is its line: right edge infinite, one line)
    pitch = rows[1][0]["y"] - y1
    if any(abs((b[0]["y"] - a[0]["y"]) - pitch) > GEOMETRY_TOL for a, b in zip(rows, rows[1:])):
        return
    lines = 1     # line k's baseline slot.y + k * pitch; its descent and the cell's margin below
    while slot.y + lines * pitch + 0.35 * pitch + 1.0 <= zone[3] and lines < 50:
        lines += 1
    slot.scale, slot.cap, slot.cap_hi, slot.next_x, slot.pitch, slot.lines = (
        scale, cap, cap_hi, next_x, pitch, lines)


#: What the embedded font subsets hold (when the font has it): Latin, punctuation, symbols
#: a form prints. A value with another character goes to LibreOffice.
CHARSET = [*range(0x20, 0x7F), *range(0xA0, 0x250), *range(0x2010, 0x2030), 0x2039, 0x203A,
           0x20AC, 0x2116, 0x2122, 0x2610, 0x2612]


def _to_unicode(cmap: bytes) -> dict[int, int]:
    """Codepoint -> character code, from a ToUnicode CMap (``bfchar`` and ``bfrange``)."""
    text = cmap.decode("latin-1")
    out: dict[int, int] = {}
    for block in re.findall(r"beginbfchar(.*?)endbfchar", text, re.S):
        for code, uni in re.findall(r"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", block):
            if len(uni) == 4:
                out.setdefault(int(uni, 16), int(code, 16))
    for block in re.findall(r"beginbfrange(.*?)endbfrange", text, re.S):
        for lo, hi, rest in re.findall(r"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>\s*(\[[^\]]*\]|<[0-9a-fA-F]+>)", block):
            lo, hi = int(lo, 16), int(hi, 16)
            if rest.startswith("["):
                for i, uni in enumerate(re.findall(r"<([0-9a-fA-F]+)>", rest)):
                    if len(uni) == 4:
                        out.setdefault(int(uni, 16), lo + i)
            elif len(rest) == 6:
                start = int(rest[1:-1], 16)
                for i in range(hi - lo + 1):
                    out.setdefault(start + i, lo + i)
    return out


def _embed_fonts(base: bytes, paths: list[str]) -> tuple[bytes, dict, list[float]]:
    """``base`` with each font file embedded once (a subset: :data:`CHARSET`), on a scratch
    page removed afterwards; the fonts stay as objects for the documents' pages to use."""
    import pymupdf

    fonts: dict[str, tuple] = {}
    with _MUPDF, pymupdf.open("pdf", base) as doc:
        heights = [page.rect.height for page in doc]
        scratch = doc.new_page(-1)
        names: dict[str, str] = {}
        for i, path in enumerate(paths):
            font = _font(path)
            codes = frozenset(u for u in CHARSET if font.has_glyph(u))
            before = {f[0] for f in scratch.get_fonts()}
            tw = pymupdf.TextWriter(scratch.rect)
            tw.append((10, 20 + 20 * i), "".join(chr(u) for u in sorted(codes)), font=font,
                      fontsize=8)
            tw.write_text(scratch)
            xref = next(f[0] for f in scratch.get_fonts() if f[0] not in before)
            fonts[path] = (xref, f"RsaFast{i + 1}", codes)
            names[path] = font.name
        doc.subset_fonts()     # renumbers the glyphs: their codes are read back below
        _rename_fonts(doc, set(paths))
        _same_metrics(doc)
        for path, (xref, name, _) in list(fonts.items()):
            kind, ref = doc.xref_get_key(xref, "ToUnicode")
            cmap = _to_unicode(doc.xref_stream(int(ref.split()[0]))) if kind == "xref" else {}
            fonts[path] = (xref, name, frozenset(cmap), cmap)
        doc.delete_page(len(doc) - 1)
        # garbage=0: object numbers kept, and the fonts kept though no page uses them yet
        return doc.tobytes(garbage=0, deflate=True), fonts, heights


def _box_codes(base: bytes, count: int) -> dict | None:
    """Where the base's ☐/☒ glyphs are in its content streams, in content order (the
    i-th is the i-th box mark): ``{"pages": [[(instruction index, array index or None,
    byte index), ...] per page], "codes": {font resource name: (☐ code, ☒ code)}}``;
    None when they are not what is expected (not ``count`` boxes, a font without both)."""
    import pikepdf

    with pikepdf.open(io.BytesIO(base)) as pdf:
        pages, codes = [], {}
        for page in pdf.pages:
            fonts = page.resources.get("/Font", {})
            box_fonts: dict[str, tuple[int, int]] = {}
            for name in fonts.keys():
                font = fonts[name]
                if "/ToUnicode" not in font or font.get("/Subtype") != "/TrueType":
                    continue
                cmap = _to_unicode(font.ToUnicode.read_bytes())
                if ord(UNCHECKED) in cmap and ord(CHECKED) in cmap:
                    box_fonts[str(name)] = (cmap[ord(UNCHECKED)], cmap[ord(CHECKED)])
            places, current = [], None
            for i, (operands, op) in enumerate(pikepdf.parse_content_stream(page)):
                op = str(op)
                if op == "Tf":
                    current = str(operands[0])
                elif op in ("Tj", "TJ", "'", '"') and current in box_fonts:
                    wanted = set(box_fonts[current])
                    items = list(operands[-1]) if op == "TJ" else [operands[-1]]
                    for k, item in enumerate(items):
                        if isinstance(item, pikepdf.String):
                            for b, byte in enumerate(bytes(item)):
                                if byte in wanted:
                                    places.append((i, k if op == "TJ" else None, b, current))
            codes.update(box_fonts)
            pages.append(places)
    if sum(len(p) for p in pages) != count:
        return None
    return {"pages": pages, "codes": codes}


def _content_glyphs(page) -> tuple[list, list[tuple[int, str]]]:
    """A page's content instructions and, in content order, each glyph it draws: (index of
    the instruction that draws it, its character from the font's ToUnicode map; "" when
    unknown)."""
    import pikepdf

    fonts = page.resources.get("/Font", {})
    decode: dict[str, tuple[int, dict[int, str]]] = {}
    for name in fonts.keys():
        font = fonts[name]
        width = 2 if font.get("/Subtype") == "/Type0" else 1
        cmap = _to_unicode(font.ToUnicode.read_bytes()) if "/ToUnicode" in font else {}
        decode[str(name)] = (width, {code: chr(u) for u, code in cmap.items()})
    instructions = list(pikepdf.parse_content_stream(page))
    glyphs, current = [], None
    for i, (operands, op) in enumerate(instructions):
        op = str(op)
        if op == "Tf":
            current = str(operands[0])
        elif op in ("Tj", "TJ", "'", '"'):
            width, chars = decode.get(current, (1, {}))
            items = list(operands[-1]) if op == "TJ" else [operands[-1]]
            for item in items:
                if isinstance(item, pikepdf.String):
                    raw = bytes(item)
                    for b in range(0, len(raw) - width + 1, width):
                        glyphs.append((i, chars.get(int.from_bytes(raw[b:b + width], "big"), "")))
    return instructions, glyphs


def _value_places(probe_a: bytes, base: bytes, wanted: set[int]) -> dict[int, int] | None:
    """Where each value of ``wanted`` (mark indexes) goes in the base's content: the index
    of the first instruction after the text object holding the label glyph LibreOffice drew
    just before the value's marker in probe A, at the outermost graphics-state level. The
    values are then in LibreOffice's content order, which readers and the layout analysis
    of a print rely on (a value written at the page's end is taken for a label). None when
    the base's glyphs are not probe A's without its markers."""
    import pikepdf

    places: dict[int, int] = {}
    with pikepdf.open(io.BytesIO(probe_a)) as pa, pikepdf.open(io.BytesIO(base)) as pb:
        if len(pa.pages) != len(pb.pages):
            return None
        for page_a, page_b in zip(pa.pages, pb.pages):
            # spaces left out (LibreOffice draws a space before an empty value or not)
            # and boxes read as ☐ (the base ticks every other one)
            _, glyphs_a = _content_glyphs(page_a)
            instructions, glyphs_b = _content_glyphs(page_b)
            glyphs_a = [g for g in glyphs_a if not g[1].isspace()]
            glyphs_b = [g for g in glyphs_b if not g[1].isspace()]
            text = "".join(c or "\ufffd" for _, c in glyphs_a).replace(CHECKED, UNCHECKED)
            before: dict[int, int] = {}
            removed = 0
            for m in MARKER_RE.finditer(text):
                before[_n(m)] = m.start() - removed
                removed += m.end() - m.start()
            base_text = "".join(c or "\ufffd" for _, c in glyphs_b).replace(CHECKED, UNCHECKED)
            if MARKER_RE.sub("", text) != base_text:
                if any(n in wanted for n in before):
                    return None
                continue
            depth, level = 0, []
            for i, (_operands, op) in enumerate(instructions):
                level.append(depth)
                op = str(op)
                depth += (op == "q") - (op == "Q")
            level.append(depth)
            for n, k in before.items():
                if n not in wanted:
                    continue
                if k == 0:
                    places[n] = 0
                    continue
                i = glyphs_b[k - 1][0]
                # the text object's own graphics state: LibreOffice writes "q rg BT … ET Q"
                b = next((b for b in range(i, -1, -1) if str(instructions[b][1]) == "BT"), i)
                q = next((q for q in range(b - 1, -1, -1)
                          if str(instructions[q][1]) in ("q", "ET", "Q")), None)
                target = level[q] if q is not None and str(instructions[q][1]) == "q" else level[b]
                j = next((j for j in range(i, len(instructions)) if str(instructions[j][1]) == "ET"),
                         len(instructions) - 1) + 1
                while j < len(instructions) and level[j] > target:
                    j += 1
                places[n] = j
    return places


def build_probe(fd: FormDefinition, *, settings: Settings, pool, version: str, layout: dict,
                data_dump: dict | None = None) -> Probe:
    """Print the probes and the blank with LibreOffice and derive the fast path's slots."""
    t0 = time.perf_counter()
    data = probe_data(fd, data_dump)
    parts, marks = skeleton(fd, data, settings=settings, version=version, derived={})
    kinds = tuple((k, p) for k, p, *_ in marks)
    # the line probe's long word: about five lines of its zone at the form's sizes
    longs: dict[str, int] = {}
    for z in layout.get("zones", ()):
        longs[z["path"]] = max(longs.get(z["path"], 0), int(1.6 * (z["bbox"][2] - z["bbox"][0])) + 12)
    docs = [_probe_docx(fd, data, settings=settings, version=version, pad="blank"),
            _probe_docx(fd, data, settings=settings, version=version, pad=None),
            *_markers_docx(fd, data, settings=settings, version=version, longs=longs, skip={})]
    with ThreadPoolExecutor(len(docs), thread_name_prefix="fastpath-probe") as ex:
        blank, boxed, probe_a, probe_b, probe_c = ex.map(pool.convert, docs)
    derived_marks = {n for n, (_k, _p, code, _c, _t) in enumerate(marks) if code == "derived"}
    probe = Probe(fd.id, version, False, skeleton=parts, kinds=kinds)

    def refuse(reason: str) -> Probe:
        probe.reason = reason
        probe.build_ms = (time.perf_counter() - t0) * 1000
        log.info("fastpath probe refused", extra={"form": fd.id, "template_version": version,
                                                  "reason": reason})
        return probe

    pages = len(layout.get("pages", ()))
    blank_chars = _chars(blank)
    if len(blank_chars) != pages:
        return refuse("pages")
    label_blank = _labels(blank_chars, set())
    widths: dict[str, float] = {}
    for z in layout.get("zones", ()):
        widths[z["path"]] = max(widths.get(z["path"], 0.0), z["bbox"][2] - z["bbox"][0])

    def analyse(a: bytes, b: bytes):
        a_chars, b_chars = _chars(a), _chars(b)
        found_a, used_a = _markers(a_chars)
        found_b, _ = _markers(b_chars)
        label_a = _labels(a_chars, used_a)
        stable = set()
        if len(a_chars) == len(b_chars) == pages:
            stable = {p for p in range(pages)
                      if _same_geometry([t for t in label_blank if t[0] == p],
                                        [t for t in label_a if t[0] == p])}
        # a marker broken over lines, or wider than its zones of the layout map (it went
        # to a line of its own): too long for its zone
        wrapped = {n for n, (kind, path) in enumerate(kinds) if kind == "text" and (
            n not in found_a or (n not in derived_marks and path in widths and
                                 found_a[n]["chars"][-1]["bbox"][2] - found_a[n]["chars"][0]["x"]
                                 > widths[path] + EDGE_TOL))}
        return found_a, found_b, stable, wrapped

    found_a, found_b, stable, wrapped = analyse(probe_a, probe_b)
    skip: dict[int, str] = {}
    # markers too wide for their zone (narrow columns) may be what moved a page, or pushed
    # a table to the next one: the marker probes again, those with a short marker Q<n>Q,
    # then (if a page still moves) with none
    def score(found, stable):
        return len(stable), sum(f["page"] in stable for f in found.values())

    tried = [{n: "short" for n in wrapped}] if wrapped else []
    while tried:
        attempt = tried.pop(0)
        again = _markers_docx(fd, data, settings=settings, version=version, longs=longs,
                              skip=attempt)
        with ThreadPoolExecutor(len(again), thread_name_prefix="fastpath-probe") as ex:
            probe_a2, probe_b2, probe_c2 = ex.map(pool.convert, again)
        found2, found_b2, stable2, wrapped2 = analyse(probe_a2, probe_b2)
        if score(found2, stable2) > score(found_a, stable):
            probe_a, probe_c, skip = probe_a2, probe_c2, attempt
            found_a, found_b, stable = found2, found_b2, stable2
        if len(stable2) < pages and "short" in attempt.values():
            tried.append({n: "empty" for n in set(attempt) | wrapped2})
    probe.stable = stable
    # text slots
    for n, (kind, path) in enumerate(kinds):
        if kind == "text" and n in found_a and found_a[n]["page"] in probe.stable:
            slot = _slot(n, found_a[n], found_b.get(n), path, layout, n in derived_marks)
            if slot is not None:
                probe.slots[n] = slot
    c_chars = _chars(probe_c)
    for n, slot in list(probe.slots.items()):
        if slot.align == "left":
            path = kinds[n][1]
            zone = ([slot.x, slot.y, float("inf"), slot.y] if n in derived_marks
                    else _zone_for(layout, path, slot.page, slot.x, slot.y))
            _line_probe(slot, n, c_chars, zone, longs.get(path, 200), skip.get(n) == "short")
        if n in derived_marks and not slot.cap:
            del probe.slots[n]     # no zone in the layout map: only with the line probe's edge
    # boxes: the blank's ☐ glyphs, matched to the layout map's boxes (in order)
    box_marks = [n for n, (kind, _) in enumerate(kinds) if kind == "box"]
    lboxes = layout.get("boxes", [])
    if len(box_marks) != len(lboxes):
        return refuse("boxes")
    glyphs = [(p, ch) for p, chars in enumerate(blank_chars) for ch in chars
              if ch["c"] == UNCHECKED]
    if len(glyphs) != len(lboxes):
        return refuse("boxes")
    taken: set[int] = set()
    for n, lb in zip(box_marks, lboxes):
        x0, top, x1, bottom = lb["bbox"]
        hits = [i for i, (p, ch) in enumerate(glyphs) if p == lb["page"] - 1
                and x0 <= (ch["bbox"][0] + ch["bbox"][2]) / 2 <= x1
                and top <= (ch["bbox"][1] + ch["bbox"][3]) / 2 <= bottom]
        if len(hits) != 1 or hits[0] in taken:
            return refuse("boxes")
        taken.add(hits[0])
        p, ch = glyphs[hits[0]]
        font = _font_path(ch["font"])
        if font is None or not _font(font).has_glyph(ord(CHECKED)):
            return refuse("box_font")
        probe.boxes[n] = BoxSlot(p, ch["x"], ch["y"], font, ch["size"], _rgb(ch["color"]))
    # the base: LibreOffice's print with boxes ☒ / ☐ in turn, same labels as the blank's
    if not _same_geometry(_labels(_chars(boxed), set()), _labels(blank_chars, set())):
        return refuse("base")
    paths = sorted({s.font for s in probe.slots.values()})
    probe.base, probe.fonts, probe.heights = _embed_fonts(boxed, paths)
    probe.box_codes = _box_codes(probe.base, len(box_marks))
    if probe.box_codes is None:
        return refuse("box_codes")
    places = _value_places(probe_a, probe.base, set(probe.slots)) if probe.slots else {}
    if places is None or set(places) != set(probe.slots):
        return refuse("content_order")
    probe.places = places
    probe.ok = True
    probe.build_ms = (time.perf_counter() - t0) * 1000
    log.info("fastpath probe built", extra={
        "form": fd.id, "template_version": version, "slots": len(probe.slots),
        "stable_pages": len(probe.stable),
        "values": sum(k == "text" for k, _ in kinds), "boxes": len(probe.boxes),
        "ms": round(probe.build_ms)})
    return probe


# --------------------------------------------------------------------------- cache

_PROBES: dict[tuple, Probe] = {}
_LOCK = threading.Lock()
_BUILDING: dict[tuple, threading.Lock] = {}


def clear_cache() -> None:
    with _LOCK:
        _PROBES.clear()
        _SEGMENTS.clear()


def probe_for(fd: FormDefinition, *, settings: Settings, pool, version: str, layout: dict,
              data_dump: dict | None = None) -> Probe:
    """The probe of (pool, form, template version, rows printed): read from the var
    cache (``fastpath_store``) or built once, then kept in memory. A new template version
    (a département's edit) is a new key and a new file, hence a new probe."""
    from . import fastpath_store

    rows = tuple(sorted((layout.get("rows") or {}).items()))
    # per pool too: an app whose LibreOffice is missing or broken makes no PDF, fast or not
    # (the file's name holds the LibreOffice too: none installed, no file found)
    key = (id(pool), fd.id, version, rows)
    hit = _PROBES.get(key)
    if hit is not None:
        return hit
    with _LOCK:
        lock = _BUILDING.setdefault(key, threading.Lock())
    with lock:
        hit = _PROBES.get(key)
        if hit is None:
            path = fastpath_store.path_for(settings, pool, fd.id, version, rows)
            hit = fastpath_store.load(path)
            if isinstance(hit, Probe) and (hit.form, hit.version) == (fd.id, version):
                hit.source = "disk"
            else:
                try:
                    hit = build_probe(fd, settings=settings, pool=pool, version=version,
                                      layout=layout, data_dump=data_dump)
                    fastpath_store.save(path, hit)
                except Exception as exc:   # the fast path never fails a document
                    log.error("fastpath probe failed", extra={"form": fd.id, "exc_type":
                                                               type(exc).__name__})
                    hit = Probe(fd.id, version, False, reason="probe_failed")
            with _LOCK:
                _PROBES[key] = hit
        return hit


# --------------------------------------------------------------------------- documents

#: Characters after which LibreOffice may break a line inside a word (ICU line breaking):
#: a word holding one is never moved to a next line by the fast path.
_BREAKERS = set("-\u2010\u2011\u2012\u2013\u2014/\\?!%|\u00b7\u2026)]}")


def _placed(slot: Slot, text: str, codes: frozenset) -> list[tuple[str, float, float]] | None:
    """The characters of ``text`` and their (x, baseline y) on the page, or None when the
    value must go to LibreOffice (a character the font lacks, a control character, a
    line that would not fit its zone, more lines than the zone holds, a line break the
    line probe cannot decide). ``codes``: the characters of the font's embedded subset."""
    if any(c in _REFUSED or not c.isprintable() or ord(c) not in codes for c in text):
        return None
    if not slot.cap:
        return _one_line(slot, text)
    if text != " ".join(text.split(" ")) or "  " in text or text.startswith(" ") or text.endswith(" "):
        return None     # runs of spaces: LibreOffice's break rules for them are not modelled
    limit = MAX_FITTED_PT
    lines: list[str] = []
    current, width = "", 0.0     # the line so far and its advance (no kerning, and no
    space = _width(slot, " ")    # ligature across a space: advances add up word by word)
    for word in text.split(" "):
        start = slot.x if not lines else slot.next_x
        w = _width(slot, word)
        candidate, cwidth = (f"{current} {word}", width + space + w) if current else (word, w)
        end = start + cwidth
        if end <= slot.cap - BREAK_TOL and cwidth <= limit:
            current, width = candidate, cwidth
            continue
        if not current or end <= slot.cap_hi + BREAK_TOL or any(c in _BREAKERS for c in word[:-1]):
            return None     # a word longer than the line, or a break LibreOffice may make elsewhere
        lines.append(current)
        current, width = word, w
        if slot.next_x + w > slot.cap - BREAK_TOL or w > limit:
            return None
    lines.append(current)
    if len(lines) > slot.lines:
        return None
    out: list[tuple[str, float, float]] = []
    for k, line in enumerate(lines):
        shaped = shape(slot.font, line, slot.size)
        if shaped is None:
            return None
        x0 = slot.x if k == 0 else slot.next_x
        y = slot.y + k * slot.pitch
        out += [(c, x0 + slot.scale * dx, y) for c, dx in shaped[0]]
    return out


def _width(slot: Slot, text: str) -> float:
    shaped = shape(slot.font, text, slot.size)
    return float("inf") if shaped is None else shaped[1] * slot.scale


def _one_line(slot: Slot, text: str) -> list[tuple[str, float, float]] | None:
    """A value without a line probe: one line, at most :data:`MAX_RUN_PT`, inside its zone
    less :data:`FIT_MARGIN`."""
    shaped = shape(slot.font, text, slot.size)
    if shaped is None:
        return None
    chars, width = shaped
    if width > MAX_RUN_PT:
        return None
    x0 = {"left": slot.x, "centre": slot.x - width / 2, "right": slot.x - width}[slot.align]
    if x0 < slot.left or x0 + width > slot.right:
        return None
    return [(c, x0 + dx, slot.y) for c, dx in chars]


def plan(probe: Probe, parts: tuple[str, ...], marks: list) -> tuple[list, str]:
    """What to write ((kind, slot, text) in order), or the reason to fall back."""
    if not probe.ok:
        return [], f"probe_{probe.reason}"
    if parts != probe.skeleton or tuple((k, p) for k, p, *_ in marks) != probe.kinds:
        return [], "skeleton"
    writes = []
    for n, (kind, path, _code, checked, text) in enumerate(marks):
        if kind == "box":
            writes.append(("box", None, checked, n))
        elif kind == "text" and text.strip() and probe.printed.get(n) != text:
            slot = probe.slots.get(n)
            if slot is None:
                return [], "not_probed"
            placed = _placed(slot, text, probe.fonts[slot.font][2])
            if placed is None:
                return [], "does_not_fit"
            writes.append(("text", slot, placed, n))
    return writes, ""


def _num(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".")


#: (id of a probe, page index) -> (the probe, its page's content cut where documents change
#: it): built once per probe in a process, so that a document's page is a join of bytes
_SEGMENTS: dict[tuple[int, int], tuple] = {}


def _segments(probe: Probe, pdf, index: int) -> tuple[list, set, list, dict]:
    """The base page's content instructions, the indexes of those showing boxes, and the
    content cut before each box instruction and each value's place: ``cuts`` (sorted) and
    ``tail[cut]`` the unparsed instructions from the cut (its box instruction excluded)
    to the next cut."""
    import pikepdf

    key = (id(probe), index)
    hit = _SEGMENTS.get(key)
    if hit is not None and hit[0] is probe:
        return hit[1]
    instructions = list(pikepdf.parse_content_stream(pdf.pages[index]))
    boxes = {i for i, *_ in probe.box_codes["pages"][index]}
    cuts = sorted(boxes | {at for n, at in probe.places.items() if probe.slots[n].page == index} | {0})
    tail = {}
    for j, c in enumerate(cuts):
        stop = cuts[j + 1] if j + 1 < len(cuts) else len(instructions)
        tail[c] = pikepdf.unparse_content_stream(instructions[c + 1 if c in boxes else c:stop])
    out = (instructions, boxes, cuts, tail)
    with _LOCK:
        _SEGMENTS[key] = (probe, out)
    return out


def _boxed(instruction, places: list, ticked: list[bool], codes: dict):
    """A copy of a box instruction with each of its ☐/☒ codes (``places``) set."""
    import pikepdf

    operands, op = instruction
    items = list(operands)
    for (_i, k, b, font), tick in zip(places, ticked):
        unchecked, checked = codes[font]
        if k is None:
            raw = bytearray(bytes(items[-1]))
            raw[b] = checked if tick else unchecked
            items[-1] = pikepdf.String(bytes(raw))
        else:
            arr = list(items[-1])
            raw = bytearray(bytes(arr[k]))
            raw[b] = checked if tick else unchecked
            arr[k] = pikepdf.String(bytes(raw))
            items[-1] = pikepdf.Array(arr)
    return pikepdf.ContentStreamInstruction(items, op)


def write(probe: Probe, writes: list, *, finish=None) -> bytes:
    """The base print with ``writes`` on it: each box set to ☒ or ☐ where LibreOffice wrote
    it (content order unchanged: readers take the i-th glyph for the i-th box and its label
    from what follows it), and each value written where LibreOffice would have drawn it in
    the page's content (``probe.places``), each glyph placed absolutely (``Tm``) by its code
    in the embedded subset. A box is ``("box", None, ticked, n)``; a value
    ``("text", Slot, [(char, x, y), ...], n)`` (``n``: the mark's index). The base's pages
    are parsed once per probe (:func:`_segments`); a document's page is then a join of
    their bytes, its box instructions and its values. ``finish(pdf)`` changes the open
    document before its one save (the stamp: :func:`fast_pdf`)."""
    import pikepdf

    values: dict[int, dict[int, list[bytes]]] = {}
    used: dict[int, set[str]] = {}
    ticked = [text for kind, _, text, _n in writes if kind == "box"]
    for kind, slot, text, n in writes:
        if kind == "box":
            continue
        obj, name, _, codes = probe.fonts[slot.font]
        r, g, b = slot.color
        height = probe.heights[slot.page]
        out = [f"q BT /{name} {_num(slot.size)} Tf {_num(r)} {_num(g)} {_num(b)} rg"]
        for c, x, y in text:
            out.append(f"1 0 0 1 {_num(x)} {_num(height - y)} Tm <{codes[ord(c)]:04X}> Tj")
        out.append("ET Q")
        values.setdefault(slot.page, {}).setdefault(probe.places[n], []).append(" ".join(out).encode())
        used.setdefault(slot.page, set()).add(slot.font)
    with pikepdf.open(io.BytesIO(probe.base)) as pdf:
        it = iter(ticked)
        for index, places in enumerate(probe.box_codes["pages"]):
            page_ticks = [next(it) for _ in places]
            if not places and index not in values:
                continue
            instructions, boxes, cuts, tail = _segments(probe, pdf, index)
            by_instruction: dict[int, tuple[list, list]] = {}
            for place, tick in zip(places, page_ticks):
                entry = by_instruction.setdefault(place[0], ([], []))
                entry[0].append(place)
                entry[1].append(tick)
            page_values = values.get(index, {})
            parts: list[bytes] = []
            for c in cuts:
                parts += page_values.get(c, ())
                if c in boxes:
                    ps, ts = by_instruction[c]
                    parts.append(pikepdf.unparse_content_stream(
                        [_boxed(instructions[c], ps, ts, probe.box_codes["codes"])]))
                parts.append(tail[c])
            page = pdf.pages[index]
            for path in used.get(index, ()):
                obj, name, *_ = probe.fonts[path]
                page.add_resource(pdf.get_object((obj, 0)), pikepdf.Name.Font,
                                  pikepdf.Name("/" + name))
            page.Contents = pdf.make_stream(b"\n".join(parts))
        if finish is not None:
            finish(pdf)
        out = io.BytesIO()
        pdf.save(out)
        return out.getvalue()


def fast_pdf(fd: FormDefinition, dump: dict, *, derived: dict | None, settings: Settings,
             version: str, pool, layout: dict | None,
             document_id: str | None = None) -> tuple[bytes | None, str]:
    """The document's PDF made without LibreOffice, or ``(None, reason)``; stamped for
    ``document_id`` (marks, QR codes, footer: ``render.stamp``) in the same save when it is
    given, not stamped otherwise."""
    if layout is None:
        return None, "no_layout"
    probe = probe_for(fd, settings=settings, pool=pool, version=version, layout=layout,
                      data_dump=dump)
    parts, marks = skeleton(fd, dump, settings=settings, version=version, derived=derived)
    writes, reason = plan(probe, parts, marks)     # HarfBuzz and pikepdf: no MuPDF lock
    if reason:
        return None, reason
    if document_id is None:
        return write(probe, writes), ""
    from forms_service.render.stamp import stamp_document

    return write(probe, writes,
                 finish=lambda pdf: stamp_document(pdf, fd.id, version, document_id)), ""


def declined(fd: FormDefinition, dump: dict, *, derived: dict | None, settings: Settings,
             version: str, pool, layout: dict | None) -> tuple[str, list[str]]:
    """Why the fast path would not take this data: the document's reason code ("" when it
    would) and the paths of the values it cannot write (not probed, or not fitting)."""
    if layout is None:
        return "no_layout", []
    probe = probe_for(fd, settings=settings, pool=pool, version=version, layout=layout,
                      data_dump=dump)
    parts, marks = skeleton(fd, dump, settings=settings, version=version, derived=derived)
    _, reason = plan(probe, parts, marks)
    if reason in ("", "skeleton") or reason.startswith("probe_"):
        return reason, []
    with _MUPDF:
        paths = [p for n, (kind, path, code, _t, text) in enumerate(marks)
                 if kind == "text" and text.strip() and probe.printed.get(n) != text
                 and (n not in probe.slots or _placed(
                     probe.slots[n], text, probe.fonts[probe.slots[n].font][2]) is None)
                 for p in (_sources(dump, path, text) if code == "derived" else [path])]
    return reason, paths


def _sources(dump: dict, path: str, text: str) -> list[str]:
    """The fields a derived text prints: the group's values found in it."""
    from ..catalogue.paths import get_path

    try:
        group = get_path(dump, path)
    except (KeyError, IndexError, TypeError):
        return [path]
    if not isinstance(group, dict):
        return [path]
    return [f"{path}.{k}" for k, v in group.items()
            if not isinstance(v, (dict, list)) and ctxmod.format_value(v)
            and ctxmod.format_value(v) in text] or [path]
