"""Données socio-professionnelles (Annexe 2, spec/dsp.md): each rule, and the questions and CNAF code
lists against the spec."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from pathlib import Path

import pytest

from forms_service.catalogue import catalogue, references
from forms_service.validation import validate

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SPEC_CANDIDATES = [ROOT.parent / "shared" / "spec" / "dsp.md", Path("/work/shared/spec/dsp.md")]

FD = catalogue.get("annexe-2")
RULES = FD.rules()


def sample() -> dict:
    return json.loads((SAMPLES / "annexe-2.json").read_text(encoding="utf-8"))


def changed(**changes) -> dict:
    """The sample with ``section__field=value`` changes (None removes the field)."""
    data = sample()
    for key, value in changes.items():
        section, name = key.split("__")
        if value is None:
            data.setdefault(section, {}).pop(name, None)
        else:
            data.setdefault(section, {})[name] = value
    return data


def rules_of(data, **kw) -> set[str]:
    return {p.rule for p in validate(FD, data, **kw).problems}


def spec_text() -> str:
    for path in SPEC_CANDIDATES:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    pytest.skip("shared/spec/dsp.md is not beside this checkout")


# -- every rule, on its invalid sample ---------------------------------------------------------

@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_fires_on_its_invalid_sample(rule):
    path = SAMPLES / "invalid" / f"annexe-2-{rule.code}.json"
    assert path.is_file(), f"write {path.relative_to(ROOT)}: a rule without a failing sample is untested"
    report = validate(FD, json.loads(path.read_text(encoding="utf-8")))
    assert report.model_valid
    assert {p.rule for p in report.problems} == {rule.code}, [p.as_dict() for p in report.problems]
    assert {p.severity for p in report.problems} == {rule.severity}


def test_the_sample_has_no_problem():
    report = validate(FD, sample())
    assert report.valid and report.problems == [], [p.as_dict() for p in report.problems]


def test_an_empty_dsp_only_asks_for_the_identity():
    report = validate(FD, {})
    assert {(p.rule, p.path) for p in report.problems} == {
        ("champ_obligatoire", "beneficiaire.nom"), ("champ_obligatoire", "beneficiaire.prenom"),
        ("champ_obligatoire", "beneficiaire.num_caf")}


# -- « none » boxes are ticked alone ------------------------------------------------------------

EXCLUSIVE = [
    ("situation_sociale", "difsoc", "0401", "0406", "dsp_difsoc_aucune_exclusive"),
    ("situation_sociale", "difdisp", "0501", "0514", "dsp_difdisp_aucun_obstacle_exclusif"),
    ("logement", "diflog", "1001", "1003", "dsp_diflog_aucune_exclusive"),
    ("mobilite", "natmob", "2504", "2503", "dsp_natmob_non_exclusif"),
]


@pytest.mark.parametrize("section,name,none,other,rule", EXCLUSIVE, ids=[e[-1] for e in EXCLUSIVE])
def test_none_box_alone(section, name, none, other, rule):
    assert rule not in rules_of(changed(**{f"{section}__{name}": [none]}))
    assert rule not in rules_of(changed(**{f"{section}__{name}": [other]}))
    for values in ([none, other], [other, none]):
        report = validate(FD, changed(**{f"{section}__{name}": values}))
        [problem] = [p for p in report.problems if p.rule == rule]
        assert (problem.path, problem.severity) == (f"{section}.{name}", "error")


# -- « Autres » needs its text ----------------------------------------------------------------

AUTRES = [
    ("situation_sociale", "difsoc", "0407", "libautrdifsoc", "dsp_difsoc_autres_non_precise"),
    ("situation_sociale", "nataccosocfam", "0413", "libautraccosocfam", "dsp_nataccosocfam_autres_non_precise"),
    ("situation_sociale", "nataccosocindi", "0420", "libautraccosocindi", "dsp_nataccosocindi_autres_non_precise"),
    ("logement", "diflog", "1009", "libautrdiflog", "dsp_diflog_autres_non_precise"),
]


@pytest.mark.parametrize("section,name,code,text,rule", AUTRES, ids=[a[-1] for a in AUTRES])
def test_autres_requires_its_text(section, name, code, text, rule):
    base = {f"{section}__{name}": [code], "situation_sociale__accosocfam": "O",
            "situation_sociale__accosocindi": "O"}
    missing = validate(FD, changed(**base, **{f"{section}__{text}": None}))
    assert [(p.path, p.severity) for p in missing.problems if p.rule == rule] == [(f"{section}.{text}", "error")]
    assert rule in rules_of(changed(**base, **{f"{section}__{text}": "   "}))      # blanks are not text
    assert rule not in rules_of(changed(**base, **{f"{section}__{text}": "Précision"}))


def test_autres_text_has_its_printed_length():
    report = validate(FD, changed(situation_sociale__difsoc=["0407"], situation_sociale__libautrdifsoc="x" * 101))
    assert [(p.path, p.rule) for p in report.problems] == [("situation_sociale.libautrdifsoc", "longueur_maximale")]
    assert validate(FD, changed(situation_sociale__difsoc=["0407"],
                                situation_sociale__libautrdifsoc="x" * 100)).valid


# -- projet professionnel -----------------------------------------------------------------------

def test_projet_professionnel_needs_the_job_sought():
    rule = "dsp_emploi_recherche_manquant"
    none = changed(situation_professionnelle__libemploirech=None, situation_professionnelle__rome_emploirech=None)
    assert rule in rules_of(none)
    assert rule not in rules_of(changed(situation_professionnelle__libemploirech=None))     # ROME alone
    assert rule not in rules_of(changed(situation_professionnelle__rome_emploirech=None))   # text alone
    none["situation_professionnelle"]["topprojpro"] = "0"
    assert rule not in rules_of(none)


def test_rome_codes_come_from_annexe_4():
    report = validate(FD, changed(situation_professionnelle__rome_emploirech="Z9999"))
    assert [(p.path, p.rule) for p in report.problems] == \
        [("situation_professionnelle.rome_emploirech", "code_inconnu")]
    assert FD.field("situation_professionnelle.rome_emploirech").options_from == "annexe-4"


# -- year of the diploma ------------------------------------------------------------------------

@pytest.mark.parametrize("year,ok", [(1911, True), (1910, False), (2011, True), (2012, False)])
def test_diploma_year_within_the_last_100_years(year, ok):
    report = validate(FD, changed(niveau_etude__annobtnivdipmax=year), today=dt.date(2011, 6, 1))
    assert ("dsp_annee_diplome_hors_bornes" not in {p.rule for p in report.problems}) is ok


def test_diploma_year_is_a_4_digit_integer():
    field = FD.field("niveau_etude.annobtnivdipmax")
    assert (field.type, field.minimum, field.maximum) == ("integer", 1900, 2100)
    report = validate(FD, changed(niveau_etude__annobtnivdipmax=96))
    assert [p.rule for p in report.problems] == ["valeur_hors_bornes"]
    report = validate(FD, changed(niveau_etude__annobtnivdipmax="quatre-vingt-seize"))
    assert [p.rule for p in report.problems] == ["type_invalide"]


# -- Annexe 1 level beside the CNAF nivetu ---------------------------------------------------------

SPEC_MAPPING = {           # spec/dsp.md, "Suggested mapping to CNAF nivetu"
    "niveau_1": {"1201"}, "niveau_2": {"1201"}, "niveau_3": {"1202"}, "niveau_4": {"1203"},
    "niveau_5": {"1204"}, "formation_courte": {"1205", "1206"}, "sans_formation": {"1206", "1207"},
}


def test_annexe_1_level_is_a_field_beside_nivetu():
    field = FD.field("niveau_etude.niveau_annexe1")
    assert field.type == "choice" and field.options_from == "annexe-1"
    assert field.codes == [e.code for e in references.entries("annexe-1")]
    paths = [f.path for f in FD.fields]
    assert paths.index("niveau_etude.niveau_annexe1") + 1 == paths.index("niveau_etude.nivetu")


@pytest.mark.parametrize("level", sorted(SPEC_MAPPING))
def test_annexe_1_and_cnaf_levels_agree(level):
    for nivetu in FD.field("niveau_etude.nivetu").codes:
        found = rules_of(changed(niveau_etude__niveau_annexe1=level, niveau_etude__nivetu=nivetu))
        assert ("dsp_niveau_incoherent" in found) is (nivetu not in SPEC_MAPPING[level]), (level, nivetu)
    # one of the two alone is never incoherent
    assert "dsp_niveau_incoherent" not in rules_of(changed(niveau_etude__niveau_annexe1=level, niveau_etude__nivetu=None))


# -- the warnings ---------------------------------------------------------------------------------

WARNINGS = [
    (dict(niveau_etude__libautrqualipro=None), "dsp_qualipro_non_precise"),
    (dict(niveau_etude__topcompeextrapro="1"), "dsp_compeextrapro_non_precise"),
    (dict(mobilite__topautrpermicondu="1"), "dsp_autre_permis_non_precise"),
    (dict(situation_professionnelle__accoemploi="1803", situation_professionnelle__libcooraccoemploi=None),
     "dsp_accoemploi_coordonnees"),
    (dict(situation_professionnelle__topdomideract="0"), "dsp_activite_dominante_non_precisee"),
    (dict(situation_sociale__nataccosocfam=["0412"]), "dsp_accompagnement_familial_incoherent"),
    (dict(situation_sociale__accosocindi="V"), "dsp_accompagnement_individuel_incoherent"),
    (dict(generalites__topdrorsarmiant="0"), "dsp_rsa_anterieur_incoherent"),
    (dict(niveau_etude__nivdipmaxobt="2606"), "dsp_annee_sans_diplome"),
]


@pytest.mark.parametrize("change,rule", WARNINGS, ids=[w[1] for w in WARNINGS])
def test_warnings(change, rule):
    report = validate(FD, changed(**change))
    assert report.valid
    assert {(p.rule, p.severity) for p in report.problems} == {(rule, "warning")}


def test_no_coordinates_needed_without_accompaniment():
    data = changed(situation_professionnelle__accoemploi="1801", situation_professionnelle__libcooraccoemploi=None)
    assert validate(FD, data).problems == []


def test_activite_dominante_given_by_its_rome_code():
    data = changed(situation_professionnelle__topdomideract="0", situation_professionnelle__rome_actdomi="N1105")
    assert validate(FD, data).problems == []


# -- the questionnaire against spec/dsp.md -------------------------------------------------------

YES_NO = [("1", "Oui"), ("0", "Non")]


def parse_spec(text: str) -> list[dict]:
    """Each question of the spec, in order: CNAF name, label, type, options, max length, section.
    A free text opened by an option ("Autres → `libautrdifsoc`") comes right after its question."""
    questions: list[dict] = []
    by_name: dict[str, dict] = {}
    opened: list[dict] = []                 # texts opened by the current question's options
    section = current = None
    for line in text.splitlines():
        if line.startswith("## Section"):
            section = re.search(r"« (.+) »", line).group(1)
            continue
        m = re.match(r'^\s*- `([\w.]+)` – (?:"([^"]*)"(?:\s*\(sic\))?)?\s*(?:– )?(.*)$', line)
        if m:
            questions.extend(opened)
            opened = []
            name = m.group(1).rsplit(".", 1)[-1]
            label, rest = m.group(2), m.group(3)
            q = {"name": name, "label": label, "section": section, "options": [], "type": None,
                 "max_length": None}
            if "checkbox group" in rest:
                q["type"] = "multi"
            elif "radio" in rest:
                q["type"] = "choice"
            if rest.startswith("Oui/Non"):
                q["type"], q["options"] = "choice", list(YES_NO)
            inline = re.findall(r'\b([ONSV]) "([^"]+)"', rest)
            if inline:
                q["type"], q["options"] = "choice", inline
            if rest.startswith("O/N/V"):
                q["type"], q["options"] = "choice", list(by_name["accosocfam"]["options"])
            if "(same label)" in rest:
                q["label"] = by_name["libcooraccosocfam"]["label"]
            length = re.search(r"\btext (\d+)", rest) or re.search(r"\((\d+) carac\. max\)", label or "")
            if length:
                q["type"], q["max_length"] = "text", int(length.group(1))
            if "year" in rest:
                q["type"] = "integer"
            questions.append(q)
            by_name[name] = current = q
            continue
        m = re.match(r'^\s*- (\d{4}) "([^"]+)"(.*)$', line)
        if m and current:
            current["options"].append((m.group(1), m.group(2)))
            current["type"] = current["type"] or "choice"
            other = re.search(r'→ `(\w+)`(?: "([^"]+)"|, (\d+) car)', m.group(3))
            if other:
                label = other.group(2)
                length = int(other.group(3) or re.search(r"\((\d+) carac\. max\)", label).group(1))
                opened.append({"name": other.group(1), "label": label, "section": section, "options": [],
                               "type": "text", "max_length": length})
                by_name[other.group(1)] = opened[-1]
    return questions + opened


def _by_leaf() -> dict:
    return {f.name: f for f in FD.fields}


def test_spec_parser_finds_the_questionnaire():
    questions = parse_spec(spec_text())
    names = [q["name"] for q in questions]
    assert len(names) == len(set(names))
    assert {"sitpersdemrsa", "difsoc", "libautrdifsoc", "difdisp", "nivetu", "annobtnivdipmax", "hispro",
            "libemploirech", "natmob", "natlog", "diflog", "libautrdiflog"} <= set(names)
    assert len(next(q for q in questions if q["name"] == "difdisp")["options"]) == 14


def test_every_question_and_option_of_the_spec_in_its_order():
    questions = parse_spec(spec_text())
    fields = _by_leaf()
    for q in questions:
        field = fields.get(q["name"])
        assert field is not None, f"{q['name']}: question of the spec missing from annexe-2"
        if q["label"]:
            assert field.label == q["label"], q["name"]
        if q["type"]:
            assert field.type == q["type"], q["name"]
        if q["options"]:
            assert [(o.code, o.label) for o in field.options] == q["options"], q["name"]
        if q["max_length"]:
            assert field.max_length == q["max_length"], q["name"]
    # the spec's order, section by section
    ours = [f.name for f in FD.fields if f.name in {q["name"] for q in questions}]
    spec_order = [q["name"] for q in questions]
    assert ours == sorted(ours, key=spec_order.index)


def test_sections_follow_the_spec():
    spec_sections = re.findall(r"^## Section « (.+) »", spec_text(), re.M)
    ours = [s.title for s in FD.sections]
    assert ours[0] == "Identification"
    assert ours[1:] == spec_sections
    fields = _by_leaf()
    for q in parse_spec(spec_text()):
        section = next(s for s in FD.sections if any(f.name == q["name"] for f in s.fields))
        assert section.title == q["section"], q["name"]
        assert fields[q["name"]].path.startswith(section.id + "."), q["name"]


def test_identity_block_comes_first():
    assert [f.path for f in FD.sections[0].fields] == [
        "beneficiaire.nom", "beneficiaire.prenom", "beneficiaire.num_caf", "beneficiaire.date_naissance"]


def test_code_lists_equal_the_spec():
    """Every "- 0101 \"...\"" line of the spec is an option of its question, with its exact label."""
    text = spec_text()
    spec_codes = re.findall(r'^\s*- (\d{4}) "([^"]+)"', text, re.M)
    ours = [(o.code, o.label) for f in FD.fields if f.type in {"choice", "multi"} and not f.options_from
            for o in f.options if re.fullmatch(r"\d{4}", o.code)]
    assert sorted(ours) == sorted(spec_codes)
    assert len(spec_codes) == 9 + 7 + 4 + 5 + 14 + 7 + 6 + 4 + 2 + 4 + 4 + 3 + 4 + 13 + 3 + 9


def test_short_labels_of_the_levels_are_kept():
    text = spec_text()
    nivetu = re.search(r"The short labels, commented out in the same file, are: (.+)\.$", text, re.M).group(1)
    assert [o.extra["short_label"] for o in FD.field("niveau_etude.nivetu").options] == re.findall(r'"([^"]+)"', nivetu)
    older = re.search(r'Older short labels: "(.+)"\.$', text, re.M).group(1)
    assert [o.extra["short_label"] for o in FD.field("niveau_etude.nivdipmaxobt").options] == older.split(" / ")


def test_codes_are_strings_not_numbers():
    for f in FD.fields:
        for o in f.options:
            assert isinstance(o.code, str)
    assert FD.field("generalites.sitpersdemrsa").codes[0] == "0101"
    report = validate(FD, changed(generalites__sitpersdemrsa=101))
    assert [p.rule for p in report.problems] == ["code_inconnu"]
