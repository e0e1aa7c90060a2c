"""The digital reader's zone text (parsers.pdf_text.zone_text), on characters placed by hand.

Issue 15: a date clipped by its widget leaked its last digit into the next zone
(« 1Point sur les candidatures »), and a flattened widget's value was read cut at the
zone's edge, both with confidence 1.0.
"""

from __future__ import annotations

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
