"""The print style of the DOCX templates: fonts, fills, the grid, and one form's sizes
(:class:`Style`, from the ``layout:`` block of its definition)."""

from __future__ import annotations

from . import geometry

BODY_FONT = "Calibri"        # Carlito (metric-compatible) on Debian, Calibri in Word
BOX_FONT = "DejaVu Sans"     # has ☐ U+2610 and ☒ U+2612
HEADING_FILL = "D9D9D9"
RESERVED_FILL = "EDEDED"
COLOURS = {"vert": "D8EFD3", "rose": "F9D9E6", "bleu": "D6E4F5"}
GRID = 12                    # section tables: 12 equal columns; cells span several
# The print style's floors (issue 16): what a form designer would sign.
MIN_BODY_PT = 8.0            # body text, labels beside boxes
MIN_TEXT_PT = 7.0            # anything printed (but the stamp's technical footer)
WRITING_LINE_MM = 7.0        # one handwriting line
MIN_SIGNATURE_MM = 15.0      # a signature zone's height...
MIN_SIGNATURE_WIDTH_MM = 50.0  # ... and width
# The page header line (PDF path): below the registration marks (centres 9 mm from the
# edges), left of the top-right QR code (18.5 mm + quiet zone, flush with the right margin).
HEADER_TEXT_TOP_MM = 13.0
HEADER_RIGHT_CLEAR_MM = 18.5 + 2.0 + 4.0
CONTENT_WIDTH_MM = 210 - geometry.MARGINS_MM.left - geometry.MARGINS_MM.right


class Style:
    """Sizes of one form's print; a dense form (the 3-page fiche) sets smaller ones."""

    def __init__(self, layout: dict):
        self.body = max(layout.get("font_size", 9.5), MIN_BODY_PT)
        self.small = max(layout.get("small_size", self.body - 1.5), MIN_BODY_PT)   # labels
        self.tiny = MIN_TEXT_PT     # secondary wording (a palier's text), never smaller
        # a list's cells (PAP, fiche de suivi emploi): the form's own small size down to 7 pt,
        # so that its fixed rows keep what they hold (the readers' round trips)
        self.list_small = max(layout.get("small_size", self.body - 1.5), MIN_TEXT_PT)
        self.heading = max(layout.get("heading_size", self.body + 0.5), self.body)
        self.box = layout.get("box_size", 14)          # ☐ ink at 14 pt DejaVu Sans: 3.5 mm
        self.box_line = layout.get("box_line", self.box * 0.85)
        self.line_mm = layout.get("line_mm", 6.0)      # a one-line field's row
        # a handwriting line of a multi-line text (``lines`` in the definition)
        self.writing_mm = max(layout.get("writing_mm", WRITING_LINE_MM), 6.0)
        self.signature_mm = max(layout.get("signature_mm", 20), MIN_SIGNATURE_MM)
        self.option_columns = layout.get("option_columns", 2)
        self.pair_fields = layout.get("pair_fields", True)
        self.label_width = layout.get("label_width", 0.2)   # share of the width for labels
        self.section_gap = layout.get("section_gap", 4)
        self.compact = set(layout.get("compact_sections") or ())
        # values in compact cells: small enough that a filled line is no taller than line_mm
        self.compact_value = max(layout.get("compact_value_size", self.body), MIN_BODY_PT)
        self.list_row_mm = layout.get("list_row_mm", 18)
        self.compact_pair_max = layout.get("compact_pair_max", 24)   # longer texts get a row
        # lists that start on a new page: a list of paths, or True for every long list
        self.list_new_page = layout.get("list_new_page", True)
        # text printed before a field, in its section (``{path: Jinja text}``)
        self.statements = dict(layout.get("statements") or {})
        # a list's numbered columns, each holding one or more of its fields (``list_columns``)
        self.list_columns = {path: [(tuple(c["fields"]), c.get("heading"), dict(c.get("labels") or {}),
                                     c.get("width_mm")) for c in cols]
                             for path, cols in (layout.get("list_columns") or {}).items()}
        # a side-by-side pair's left side → its share of the width (``side_widths``)
        self.side_widths = dict(layout.get("side_widths") or {})
        # compact fields on a row of their own (``own_row``)
        self.own_row = set(layout.get("own_row") or ())
