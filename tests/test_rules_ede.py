"""Échelle de distance à l'emploi (spec/ede.md): total, orientation bands and their bounds, colour
alerts, missing paliers, and a département's own grid replacing the indicative one."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from forms_service.catalogue import Catalogue, catalogue, catalogue_for
from forms_service.catalogue.ede_grid import load_grid
from forms_service.config import Settings
from forms_service.rules import ede
from forms_service.rules.programme import Programme
from forms_service.validation import validate

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "annexe-3.json"
FD = catalogue.get("annexe-3")
ITEMS = [item["code"] for item in load_grid()["items"]]
POINTS = {1: 1, 2: 2, 3: 4, 4: 8, 5: 14, 6: 20}       # the indicative grid: palier → points
ORIENTATIONS = {
    "professionnelle": "Orientation prioritaire Pôle Emploi (sphère professionnelle)",
    "equipe_pluridisciplinaire": "L'équipe pluridisciplinaire ou d'orientation se prononce",
    "solidarite": "Orientation vers la sphère solidarité",
}
COLOUR_MEANING = {
    "vert": "point de vigilance",
    "rose": "à l'appréciation de l'équipe pluridisciplinaire",
    "bleu": "frein réel : orientation solidarité à prioriser",
}


def sample() -> dict:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


def with_paliers(paliers: list[int]) -> dict:
    data = sample()
    data["paliers"] = {item: str(p) for item, p in zip(ITEMS, paliers)}
    data.pop("complements", None)
    return data


def test_the_indicative_grid():
    grid = load_grid()
    assert grid["modele_indicatif"] is True
    assert len(grid["items"]) == 8 and ITEMS[0] == "logement"
    for item in grid["items"]:
        assert [p["points"] for p in item["paliers"]] == [1, 2, 4, 8, 14, 20]
        assert [p["couleur"] for p in item["paliers"]] == [None, None, "vert", "vert", "rose", "bleu"]
    assert len(FD.field("paliers.logement").options) == 6


# -- totals at the band boundaries ----------------------------------------------------------

BOUNDARIES = [
    # total, paliers of the 8 items (points 1,2,4,8,14,20), orientation
    (17, [1, 1, 1, 1, 1, 2, 2, 4], "professionnelle"),             # 1+1+1+1+1+2+2+8
    (18, [1, 1, 1, 1, 2, 2, 2, 4], "equipe_pluridisciplinaire"),   # 1+1+1+1+2+2+2+8
    (19, [1, 1, 1, 2, 2, 2, 2, 4], "equipe_pluridisciplinaire"),   # 1+1+1+2+2+2+2+8
    (34, [1, 1, 2, 2, 2, 3, 4, 5], "equipe_pluridisciplinaire"),   # 1+1+2+2+2+4+8+14
    (35, [1, 1, 1, 2, 3, 3, 4, 5], "equipe_pluridisciplinaire"),   # 1+1+1+2+4+4+8+14
    (36, [1, 1, 2, 2, 3, 3, 4, 5], "solidarite"),                  # 1+1+2+2+4+4+8+14
]


@pytest.mark.parametrize("total,paliers,orientation", BOUNDARIES, ids=[str(b[0]) for b in BOUNDARIES])
def test_orientation_at_the_boundaries(total, paliers, orientation):
    assert sum(POINTS[p] for p in paliers) == total
    result = ede.score({item: str(p) for item, p in zip(ITEMS, paliers)})
    assert (result["total"], result["orientation"], result["complet"]) == (total, orientation, True)
    report = validate(FD, with_paliers(paliers))
    assert report.valid
    assert report.derived["ede"]["total"] == total
    assert report.derived["ede"]["orientation"] == orientation
    assert report.derived["ede"]["orientation_libelle"] == ORIENTATIONS[orientation]


def test_the_sample_scores_27():
    report = validate(FD, sample())
    assert report.valid
    assert (report.derived["ede"]["total"], report.derived["ede"]["orientation"]) == (27, "equipe_pluridisciplinaire")


def test_extremes():
    assert ede.score(dict.fromkeys(ITEMS, "1"))["total"] == 8
    assert ede.score(dict.fromkeys(ITEMS, "6"))["total"] == 160


# -- missing paliers ----------------------------------------------------------------------

def test_missing_palier():
    data = with_paliers([1, 1, 1, 1, 1, 2, 2, 4])
    del data["paliers"]["sante"]
    report = validate(FD, data)
    assert not report.valid
    [problem] = report.errors
    assert (problem.rule, problem.path) == ("ede_palier_manquant", "paliers.sante")
    assert report.derived["ede"]["complet"] is False
    assert report.derived["ede"]["orientation"] is None
    assert report.derived["ede"]["items_manquants"] == ["sante"]


def test_empty_grid_names_every_item():
    data = sample()
    del data["paliers"]
    report = validate(FD, data)
    assert sorted(p.path for p in report.errors if p.rule == "ede_palier_manquant") == \
        sorted(f"paliers.{i}" for i in ITEMS)


def test_a_palier_outside_1_to_6_is_refused_by_the_model():
    data = sample()
    data["paliers"]["logement"] = "7"
    report = validate(FD, data)
    assert not report.model_valid
    assert [(p.path, p.rule) for p in report.problems] == [("paliers.logement", "code_inconnu")]


# -- colour alerts ------------------------------------------------------------------------

def test_colour_alerts_are_listed():
    # logement 6 (bleu), sante 5 (rose), budget 3 and mobilite 4 (vert), the rest no colour
    data = with_paliers([6, 5, 1, 3, 2, 1, 2, 4])
    report = validate(FD, data)
    assert report.valid                                # alerts are warnings
    found = {(p.rule, p.path) for p in report.warnings}
    assert found == {("ede_alerte_bleue", "paliers.logement"), ("ede_alerte_rose", "paliers.sante"),
                     ("ede_alerte_verte", "paliers.budget"), ("ede_alerte_verte", "paliers.mobilite")}
    alerts = report.derived["ede"]["alertes"]
    assert [(a["item"], a["palier"], a["couleur"]) for a in alerts] == [
        ("logement", "6", "bleu"), ("sante", "5", "rose"), ("budget", "3", "vert"), ("mobilite", "4", "vert")]
    for alert in alerts:
        assert alert["signification"] == COLOUR_MEANING[alert["couleur"]]
    bleue = next(p for p in report.warnings if p.rule == "ede_alerte_bleue")
    assert "Logement" in bleue.message and "palier 6" in bleue.message


def test_no_alert_on_uncoloured_paliers():
    report = validate(FD, with_paliers([1, 2, 1, 2, 1, 2, 1, 2]))
    assert report.problems == [] and report.derived["ede"]["alertes"] == []


# -- bounds are configuration -----------------------------------------------------------------

def test_bounds_are_the_programme_s():
    data = with_paliers([1, 1, 1, 2, 2, 2, 2, 4])                       # 19 points
    assert validate(FD, data).derived["ede"]["orientation"] == "equipe_pluridisciplinaire"
    low = validate(FD, data, programme=Programme(ede_bound_low=20))
    assert low.derived["ede"]["orientation"] == "professionnelle"
    high = validate(FD, data, programme=Programme(ede_bound_low=10, ede_bound_high=18))
    assert high.derived["ede"]["orientation"] == "solidarite"
    # a programme is for one call only
    assert validate(FD, data).derived["ede"]["orientation"] == "equipe_pluridisciplinaire"


def test_the_programme_comes_from_settings(tmp_path):
    settings = Settings.from_env({"var_dir": tmp_path, "EDE_BOUND_LOW": "20", "EDE_BOUND_HIGH": "30"},
                                 environ={})
    programme = Programme.from_settings(settings)
    assert programme.bounds == (20, 30)
    assert programme.params()["ede"]["bound_low"] == 20
    assert Programme().bounds == (18, 35)                               # programme.yaml's defaults
    assert programme.template_values() == {"ede": {"bound_low": 20, "bound_high": 30}}
    with pytest.raises(ValueError):
        Programme(ede_bound_low=40, ede_bound_high=30)


@pytest.mark.parametrize("low,high,orientation", [
    (19, 19, "equipe_pluridisciplinaire"),   # a total equal to a bound goes to the équipe
    (20, 30, "professionnelle"),
    (10, 18, "solidarite"),
])
def test_bounds_are_parameters_of_score(low, high, orientation):
    paliers = {i: str(p) for i, p in zip(ITEMS, [1, 1, 1, 2, 2, 2, 2, 4])}    # 19 points
    assert ede.score(paliers, Programme(low, high))["orientation"] == orientation


# -- a département's own grid ------------------------------------------------------------------

DEPARTEMENT_GRID = {
    "modele_indicatif": False,
    "titre": "Échelle de distance à l'emploi – Département",
    "points": [1, 3, 5, 10, 15, 20],
    "couleurs": [None, "vert", "vert", "rose", "rose", "bleu"],
    "items": [
        {"code": f"item{n}", "label": f"Item {n}",
         "paliers": [f"Palier {p} de l'item {n}" for p in range(1, 7)]}
        for n in range(1, 9)
    ],
}
# one palier with its own points and colour, and a demand for complementary information
DEPARTEMENT_GRID["items"][0]["paliers"][5] = {"label": "Sans logement", "points": 18, "couleur": "bleu",
                                              "complement": True}


@pytest.fixture
def departement_grid(tmp_path):
    path = tmp_path / "grille.yaml"
    path.write_text(yaml.safe_dump(DEPARTEMENT_GRID, allow_unicode=True), encoding="utf-8")
    return path


def test_load_grid_reads_a_departement_file(departement_grid):
    grid = load_grid(str(departement_grid))
    assert grid["modele_indicatif"] is False
    assert [i["code"] for i in grid["items"]] == [f"item{n}" for n in range(1, 9)]
    assert [p["points"] for p in grid["items"][1]["paliers"]] == [1, 3, 5, 10, 15, 20]
    sixth = grid["items"][0]["paliers"][5]
    assert (sixth["label"], sixth["points"], sixth["couleur"], sixth["complement"]) == \
        ("Sans logement", 18, "bleu", True)


def test_departement_grid_replaces_the_default_for_score(departement_grid):
    programme = Programme(ede_grid=departement_grid)
    paliers = {f"item{n}": "2" for n in range(1, 9)}                    # 8 × 3 = 24 points
    result = ede.score(paliers, programme)
    assert (result["total"], result["orientation"], result["modele_indicatif"]) == \
        (24, "equipe_pluridisciplinaire", False)
    assert {a["couleur"] for a in result["alertes"]} == {"vert"}       # palier 2 is green here
    paliers["item1"] = "6"
    assert ede.score(paliers, programme)["total"] == 24 - 3 + 18
    # the indicative grid is untouched: another app's programme
    assert ede.score(dict.fromkeys(ITEMS, "1"))["total"] == 8


def test_departement_grid_drives_the_form_without_code_changes(departement_grid):
    fd = Catalogue(ede_grid=departement_grid).get("annexe-3")           # a catalogue loaded with that grid
    assert catalogue_for(departement_grid).get("annexe-3").field("paliers.item1") is not None
    assert catalogue.get("annexe-3").field("paliers.item1") is None     # the default one is untouched
    programme = Programme(ede_grid=departement_grid)
    assert fd.field("paliers.item1") is not None and fd.field("paliers.logement") is None
    assert [o.extra["points"] for o in fd.field("paliers.item2").options] == [1, 3, 5, 10, 15, 20]
    data = sample()
    data["paliers"] = {f"item{n}": "1" for n in range(1, 9)}
    data.pop("complements")
    report = validate(fd, data, programme=programme)
    assert report.valid and report.derived["ede"]["total"] == 8
    assert report.derived["ede"]["orientation"] == "professionnelle"
    # the indicative grid's items are not fields of this form
    data["paliers"]["logement"] = "1"
    assert "champ_inconnu" in {p.rule for p in validate(fd, data, programme=programme).problems}


def test_a_grid_without_8_items_of_6_paliers_is_refused(tmp_path):
    bad = copy.deepcopy(DEPARTEMENT_GRID)
    bad["items"] = bad["items"][:7]
    path = tmp_path / "sept.yaml"
    path.write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError):
        load_grid(str(path))
    bad = copy.deepcopy(DEPARTEMENT_GRID)
    bad["items"][3]["paliers"] = bad["items"][3]["paliers"][:5]
    path = tmp_path / "cinq.yaml"
    path.write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError):
        load_grid(str(path))
