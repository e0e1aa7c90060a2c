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
CONTENT_WIDTH_MM = 210 - geometry.MARGINS_MM.left - geometry.MARGINS_MM.right


class Style:
    """Sizes of one form's print; a dense form (the 3-page fiche) sets smaller ones."""

    def __init__(self, layout: dict):
        self.body = layout.get("font_size", 9.5)
        self.small = layout.get("small_size", self.body - 1.5)
        self.heading = layout.get("heading_size", self.body + 0.5)
        self.box = layout.get("box_size", 14)          # ☐ ink at 14 pt DejaVu Sans: 3.5 mm
        self.box_line = layout.get("box_line", self.box * 0.85)
        self.line_mm = layout.get("line_mm", 6.0)      # one handwriting line
        self.signature_mm = layout.get("signature_mm", 20)
        self.option_columns = layout.get("option_columns", 2)
        self.pair_fields = layout.get("pair_fields", True)
        self.label_width = layout.get("label_width", 0.2)   # share of the width for labels
        self.section_gap = layout.get("section_gap", 4)
        self.compact = set(layout.get("compact_sections") or ())
        # values in compact cells: small enough that a filled line is no taller than line_mm
        self.compact_value = layout.get("compact_value_size", self.body)
        self.list_row_mm = layout.get("list_row_mm", 18)
        self.compact_pair_max = layout.get("compact_pair_max", 24)   # longer texts get a row
        # lists that start on a new page: a list of paths, or True for every long list
        self.list_new_page = layout.get("list_new_page", True)
