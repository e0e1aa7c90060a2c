"""The ``layout:`` block of a definition: how the template builder prints the form.

A typed, validated object: an unknown key, a value of the wrong type, or a name of
a section or field the definition does not have is refused when the catalogue
loads, with the form and the key in the message. Sizes left out (``None``) take
the builder's defaults (``render/template_builder.Style``).
"""

from __future__ import annotations

from typing import Iterable

from pydantic import BaseModel, ConfigDict, ValidationError


class ListColumn(BaseModel):
    """One printed column of a list: the fields it holds (paths inside the list's items, the
    first one names the column unless ``heading`` does), printed one under the other."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: tuple[str, ...]
    heading: str | None = None
    #: what the cell prints before a second field (its path → text), when the heading
    #: already says the rest (« Motif : » under « Résultat et motif (si …) »)
    labels: dict[str, str] = {}
    #: the column's width (mm) when the builder's (from the fields' types and lengths) is
    #: not what the print needs: a column of boxes with a text under them
    width_mm: float | None = None


class PrintLayout(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # sizes (points, or millimetres where named _mm)
    font_size: float | None = None
    small_size: float | None = None
    heading_size: float | None = None
    box_size: float | None = None
    box_line: float | None = None
    line_mm: float | None = None
    writing_mm: float | None = None
    signature_mm: float | None = None
    list_row_mm: float | None = None
    compact_value_size: float | None = None
    # arrangement
    option_columns: int | None = None
    pair_fields: bool | None = None
    label_width: float | None = None
    section_gap: float | None = None
    compact_pair_max: int | None = None
    #: lists that start on a new page: True for every long list, or their paths
    list_new_page: bool | list[str] | None = None
    #: sections printed as a cell-per-option grid (the EDE)
    grids: tuple[str, ...] = ()
    #: sections printed in the compact « Label : ……… » style
    compact_sections: tuple[str, ...] = ()
    #: pairs of sections printed side by side: [[left, right], ...]
    side_by_side: tuple[tuple[str, str], ...] = ()
    #: the left section of a pair → its share of the width (0.3–0.7; a half by default), so
    #: that the side that holds more is wider and the pair's row no taller than it must be
    side_widths: dict[str, float] = {}
    #: a field path → the option group heading before which the page breaks
    page_break_before_group: dict[str, str] = {}
    #: fields of a compact section printed on a row of their own (not paired), so that
    #: their longest value holds beside their label on one line
    own_row: tuple[str, ...] = ()
    #: a list printed in numbered columns that may hold several of its fields (the seed's
    #: « Colonne 1 … 6 » of the fiche de suivi emploi): a list path → its columns, in order;
    #: every printed field of the list in exactly one column
    list_columns: dict[str, tuple[ListColumn, ...]] = {}
    #: text printed before a field, inside its section (a field path → Jinja text)
    statements: dict[str, str] = {}
    #: lines printed after the last section (Jinja templates over the context)
    summary: tuple[str, ...] = ()

    def section_ids(self) -> set[str]:
        return (set(self.grids) | set(self.compact_sections) | {s for pair in self.side_by_side for s in pair}
                | set(self.side_widths))

    def field_paths(self) -> set[str]:
        paths = (set(self.page_break_before_group) | set(self.statements) | set(self.own_row)
                 | set(self.list_columns))
        if isinstance(self.list_new_page, list):
            paths |= set(self.list_new_page)
        return paths

    def builder_options(self) -> dict:
        """The keys set in the definition, as the builder's ``Style`` reads them."""
        return self.model_dump(exclude_none=True, exclude_defaults=True)


def _check_list_columns(form_id: str, layout: PrintLayout, fields) -> None:
    """Each list's columns hold every printed field of its items once, and nothing else."""
    for path, columns in layout.list_columns.items():
        lst = fields[path]
        printed = [c.path for c in lst.item_fields if c.printed]
        placed = [p for col in columns for p in col.fields]
        labelled = [p for col in columns for p in col.labels if p not in col.fields[1:]]
        if labelled:
            raise ValueError(f"{form_id}: layout: list_columns.{path}: labels name fields that are "
                             f"not a second field of their column: {', '.join(labelled)}")
        if sorted(placed) != sorted(printed):
            raise ValueError(f"{form_id}: layout: list_columns.{path} must hold each printed field "
                             f"of the list once: {', '.join(printed)}")


def parse_layout(form_id: str, raw: dict | None, sections: Iterable[str],
                 fields) -> PrintLayout:
    """The layout of ``form_id``; ``ValueError`` naming what is wrong."""
    try:
        layout = PrintLayout.model_validate(raw or {})
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{form_id}: layout: {where}") from None
    unknown = sorted(layout.section_ids() - set(sections))
    if unknown:
        raise ValueError(f"{form_id}: layout names sections that do not exist: {', '.join(unknown)}")
    unknown = sorted(layout.field_paths() - set(fields))
    if unknown:
        raise ValueError(f"{form_id}: layout names fields that do not exist: {', '.join(unknown)}")
    _check_list_columns(form_id, layout, fields)
    lefts = {left for left, _ in layout.side_by_side}
    for left, share in layout.side_widths.items():
        if left not in lefts or not 0.3 <= share <= 0.7:
            raise ValueError(f"{form_id}: layout: side_widths.{left} must be the left section of a "
                             f"side_by_side pair, with a share between 0.3 and 0.7")
    return layout
