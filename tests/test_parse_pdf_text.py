"""The digital reader's zone text (parsers.pdf_text.zone_text), on characters placed by hand.

Issue 15: a date clipped by its widget leaked its last digit into the next zone
(« 1Point sur les candidatures »), and a flattened widget's value was read cut at the
zone's edge, both with confidence 1.0.
"""

from __future__ import annotations

import numpy as np

from parsers import pdf_marks
from parsers.pdf_text import Char, PageText, zone_text

SIZE = 9.0
ADVANCE = 5.0   # a char's advance, in points


def write(page: PageText, text: str, x: float, baseline: float) -> None:
    for ch in text:
        page.chars.append(Char(ch, x, baseline - 6.5, x + (2.5 if ch == " " else 4.2), baseline, baseline, SIZE))
        x += ADVANCE


def test_a_date_clipped_by_its_zone_does_not_leak_into_the_next_one():
    page = PageText(1, 595, 842)
    date_zone, next_zone = [100.0, 100.0, 146.0, 112.0], [148.0, 100.0, 300.0, 112.0]
    write(page, "12/03/2011", 101.0, 110.0)           # its last digit is drawn past x = 146
    write(page, "Point sur les candidatures", 160.0, 110.0)
    assert zone_text(page, next_zone, [date_zone]).text == "Point sur les candidatures"
    assert zone_text(page, date_zone, [next_zone]).text == "12/03/2011"


def test_a_value_running_past_its_zone_is_read_whole_and_a_neighbour_label_is_not():
    page = PageText(1, 595, 842)
    zone = [100.0, 100.0, 180.0, 112.0]
    write(page, "Je souhaite travailler près d'Arras.", 101.0, 110.0)   # clipped at 180 when shown
    assert zone_text(page, zone).text == "Je souhaite travailler près d'Arras."
    page = PageText(1, 595, 842)
    write(page, "WATTEBLED", 101.0, 110.0)
    write(page, "Prénom", 186.0, 110.0)                # the next cell's printed label
    assert zone_text(page, zone).text == "WATTEBLED"


def test_a_flattened_value_wrapped_without_a_space_is_flagged():
    page = PageText(1, 595, 842)
    zone = [100.0, 100.0, 145.0, 125.0]
    write(page, "Logistiq", 101.0, 110.0)
    write(page, "ue", 101.0, 120.0)
    assert zone_text(page, zone).doubt is None          # our own PDFs: LibreOffice keeps the space
    assert zone_text(page, zone, flattened=True).doubt.startswith("Retour à la ligne")


def test_texts_drawn_over_each_other_are_flagged():
    page = PageText(1, 595, 842)
    zone = [100.0, 100.0, 300.0, 112.0]
    write(page, "Prendre", 101.0, 110.0)
    write(page, "convenu.", 103.0, 110.0)
    assert zone_text(page, zone).doubt.startswith("Textes superposés")


def test_a_flattened_widgets_text_is_read_whole_by_its_owner_not_its_neighbours():
    """Issue 15 (pdf-lib, CERS and CERP tables): a widget clips a long value by a clip path
    only, so its text runs over the next cell's, interleaved. Each char knows the widget
    that drew it (Char.owner): the zone reads its own widget's text, whole, and only it."""
    page = PageText(1, 595, 842)
    organismes, date = [100.0, 100.0, 150.0, 112.0], [152.0, 100.0, 200.0, 112.0]
    write(page, "Maison du Département, CAF", 101.0, 110.0)   # runs on to x = 230
    for c in page.chars:
        c.owner = 0
    start = len(page.chars)
    write(page, "01/04/2011", 153.5, 110.0)
    for c in page.chars[start:]:
        c.owner = 1
    page.widgets = np.array([[100.0, 100.0, 232.0, 112.0], [152.0, 100.0, 203.0, 112.0]])
    assert zone_text(page, organismes, [date], widget=0).text == "Maison du Département, CAF"
    assert zone_text(page, date, [organismes], widget=1).text == "01/04/2011"
    assert pdf_marks.widget_over(date, page.widgets) == 1          # the widget whose corner is in it
    assert pdf_marks.widget_over(organismes, page.widgets) == 0


def test_a_widgets_lines_wrapped_between_letters_are_a_doubt_after_a_hyphen_joined():
    page = PageText(1, 595, 842)
    write(page, "Centre médico-", 101.0, 110.0)
    write(page, "social, CPAM", 101.0, 120.0)
    for c in page.chars:
        c.owner = 0
    page.widgets = np.array([[100.0, 100.0, 180.0, 125.0]])
    zt = zone_text(page, [100.0, 100.0, 180.0, 125.0], widget=0)
    assert (zt.text, zt.doubt) == ("Centre médico-social, CPAM", None)
    page = PageText(1, 595, 842)
    write(page, "Logistiq", 101.0, 110.0)
    write(page, "ue (N1103)", 101.0, 120.0)
    for c in page.chars:
        c.owner = 0
    assert zone_text(page, [100.0, 100.0, 180.0, 125.0], widget=0).doubt.startswith("Retour à la ligne")


def test_a_reexported_docx_zone_moves_with_its_label_only_when_the_next_label_moved_alike():
    """Issue 15: a DOCX edited (a paragraph added at the top) and exported again: a zone is
    placed again by the label before it and the label below it (parsers.pdf_relocate),
    else left out (its field goes to review)."""
    from parsers.pdf_relocate import Run, relocate

    def run(text, page, x0, top, x1):
        return Run(page, text, (x0, top, x1, top + 8), top + 7)

    blank = (run("nom patronymique", 1, 40, 100, 120), run("prenom", 1, 300, 100, 330),
             run("adresse", 1, 40, 130, 80), run("date de naissance", 1, 40, 170, 120))
    zones = [{"page": 1, "path": "nom", "kind": "text", "bbox": [125, 98, 295, 110]},
             {"page": 1, "path": "adresse", "kind": "text", "bbox": [40, 140, 500, 160]}]
    # everything 30 pt lower, the address two lines longer (20 pt) than the blank form's
    found = [run("note ajoutee", 1, 40, 60, 200), run("nom patronymique", 1, 40, 130, 120),
             run("prenom", 1, 300, 130, 330), run("adresse", 1, 40, 160, 80),
             run("date de naissance", 1, 40, 220, 120)]
    moved = relocate(zones, blank, found)
    assert moved == {0: {**zones[0], "bbox": [125, 128, 295, 140]}}
