"""The catalogue as a whole: the forms of the contract, reference lists, samples, schemas, rule wiring."""

from __future__ import annotations

import csv
import json
import re
from importlib import resources
from pathlib import Path

import pytest

from forms_service.catalogue import catalogue, load_yaml, references
from forms_service.validation import CHECKS
from forms_service.errors import NotAForm, UnknownForm
from forms_service.validation import validate

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DATA = ROOT / "forms_service" / "data"
DEFINITIONS = resources.files("forms_service.catalogue.forms")
SHARED_REFERENCE = ROOT.parent / "shared" / "reference"

#: Every form id of the contract with other systems, and its kind.
CONTRACT = {
    "cers": "form",
    "cerp": "form",
    "fiche-liaison": "form",
    "annexe-2": "form",
    "annexe-3": "form",
    "annexe-1": "reference",
    "annexe-4": "reference",
    "annexe-6": "reference",
}
FORMS = [fd for fd in catalogue.forms() if fd.kind == "form"]
REFERENCES = [fd for fd in catalogue.forms() if fd.kind == "reference"]


def form_of(stem: str) -> str:
    """The form a sample file is for: the longest form id its name starts with."""
    ids = [fd.id for fd in FORMS if stem == fd.id or stem.startswith(fd.id + "-")]
    assert ids, f"{stem}: no form of the catalogue matches this file name"
    return max(ids, key=len)


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# -- the forms of the contract -------------------------------------------------------------

@pytest.mark.parametrize("form_id,kind", CONTRACT.items())
def test_contract_form_is_in_the_catalogue(form_id, kind):
    if not DEFINITIONS.joinpath(f"{form_id}.yaml").is_file():
        pytest.skip(f"{form_id}.yaml is not written yet")
    fd = catalogue.get(form_id)
    assert fd.id == form_id and fd.kind == kind
    assert form_id in load_yaml("forms_service.catalogue.forms", "index.yaml")["forms"]


def test_every_definition_file_is_in_the_index():
    index = load_yaml("forms_service.catalogue.forms", "index.yaml")["forms"]
    files = {p.name[:-5] for p in DEFINITIONS.iterdir() if p.name.endswith(".yaml") and p.name != "index.yaml"}
    assert files <= set(index)
    assert len(index) == len(set(index))


def test_annexe_2_comes_right_after_the_fiche_de_liaison():
    index = load_yaml("forms_service.catalogue.forms", "index.yaml")["forms"]
    assert index[index.index("fiche-liaison") + 1] == "annexe-2"


def test_annexe_7_is_the_fiche_de_liaison():
    assert catalogue.get("annexe-7") is catalogue.get("fiche-liaison")
    with pytest.raises(UnknownForm):
        catalogue.get("annexe-99")


def test_form_metadata():
    for fd in catalogue.forms():
        assert fd.title and fd.annexe and fd.template
        assert fd.pages is None or (isinstance(fd.pages, int) and fd.pages > 0)
        assert fd.provenance in {"confirmed", "inferred"}
    assert catalogue.get("fiche-liaison").pages == 3
    dsp = catalogue.get("annexe-2")
    assert (dsp.title, dsp.annexe, dsp.template, dsp.provenance) == \
        ("Données socio-professionnelles", "Annexe 2", "annexe-2.docx", "inferred")


# -- reference lists: the package data and its hard-coded sizes -------------------------------

def _csv_codes(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        return [row["code"] for row in csv.DictReader(fh)]


def test_rome_list_has_its_521_codes():
    codes = [e.code for e in catalogue.get("annexe-4").entries()]
    assert len(codes) == 521 == len(set(codes))
    assert all(re.fullmatch(r"[A-N]\d{4}", c) for c in codes)
    assert codes == _csv_codes(DATA / "rome_codes.csv")
    assert all(e.label and e.extra["domaine"] == e.code[0] for e in catalogue.get("annexe-4").entries())


def test_codification_has_its_70_rows_and_10_themes():
    entries = catalogue.get("annexe-6").entries()
    assert len(entries) == 70 == len({e.code for e in entries})
    assert [e.code for e in entries] == _csv_codes(DATA / "codifications_actions.csv")
    assert [t.code for t in references.themes()] == list("ABCDEFGHIJ")
    for e in entries:
        assert e.extra["theme"] == e.code[0]
        assert e.extra["ne_peut_etre_seule"] in {"oui", "non", "parfois"}


def test_annexe_1_levels_and_their_cnaf_equivalents():
    """spec/dsp.md: the CG62 levels, and the suggested mapping to the CNAF nivetu kept as data."""
    entries = catalogue.get("annexe-1").entries()
    assert [e.label for e in entries] == [
        "Niveau I : enseignement supérieur", "Niveau II : BAC +3 / +4", "Niveau III : BAC +2",
        "Niveau IV : BAC ou équivalent", "Niveau V : CAP/BEP", "Formation courte max 1 mois",
        "Pas de formation / Pas de diplôme"]
    assert [e.extra["nivetu_cnaf"] for e in entries] == [
        ["1201"], ["1201"], ["1202"], ["1203"], ["1204"], ["1205", "1206"], ["1206", "1207"]]


@pytest.mark.parametrize("name", ["rome_codes.csv", "codifications_actions.csv"])
def test_package_copy_matches_the_shared_reference(name):
    """The package ships a copy of shared/reference/: they must not drift apart (checked when beside the checkout)."""
    shared = SHARED_REFERENCE / name
    if not shared.is_file():
        pytest.skip(f"{shared} is not beside this checkout")
    assert (DATA / name).read_text(encoding="utf-8") == shared.read_text(encoding="utf-8")


def test_reference_lists_are_not_forms():
    assert {fd.id for fd in REFERENCES} >= {"annexe-1", "annexe-4", "annexe-6"}
    for fd in REFERENCES:
        assert fd.entries()
        assert fd.model is None
        with pytest.raises(NotAForm):
            fd.json_schema()
        with pytest.raises(NotAForm):
            validate(fd, {})


# -- schemas ------------------------------------------------------------------------------

@pytest.mark.parametrize("fd", FORMS, ids=lambda fd: fd.id)
def test_json_schema_of_each_form(fd):
    schema = fd.json_schema()
    assert isinstance(schema, dict)
    assert schema["type"] == "object" and schema["properties"]
    assert schema["title"] == fd.title and schema["$id"] == f"urn:rsa-forms:{fd.id}"
    assert schema.get("additionalProperties") is False
    json.loads(json.dumps(schema))          # plain JSON all the way down
    top = {f.path.split(".")[0] for f in fd.fields}
    assert set(schema["properties"]) == top


# -- definitions are consistent ----------------------------------------------------------------

def _known_path(fd, path: str) -> bool:
    if fd.field(path):
        return True
    if path.endswith(".signee"):
        sig = fd.field(path.removesuffix(".signee"))
        return sig is not None and sig.type == "signature"
    return any(f.path.startswith(path + ".") for f in fd.fields)     # a group (paliers)


def _condition_paths(cond):
    if not cond:
        return
    for key in ("all", "any"):
        for c in cond.get(key, ()):
            yield from _condition_paths(c)
    if "not" in cond:
        yield from _condition_paths(cond["not"])
    if "path" in cond:
        yield cond["path"]


PATH_PARAMS = {"path", "paths", "after", "other", "start", "end", "on", "report_at", "previous_months"}


@pytest.mark.parametrize("fd", FORMS, ids=lambda fd: fd.id)
def test_rules_name_registered_checks_and_existing_fields(fd):
    codes = [r.code for r in fd.rules()]
    assert len(codes) == len(set(codes)), "a rule code is declared twice"
    for rule in fd.rules():
        assert re.fullmatch(r"[a-z0-9_]+", rule.code), rule.code
        assert rule.severity in {"error", "warning"}
        assert rule.check in CHECKS, f"{rule.code}: no check named {rule.check}"
        assert rule.message
        for key, value in rule.params.items():
            assert isinstance(key, str), f"{rule.code}: parameter {key!r} (a bare YAML on/yes/no?)"
            if key in PATH_PARAMS and value:
                for p in [value] if isinstance(value, str) else value:
                    assert _known_path(fd, p), f"{rule.code}: unknown path {p}"
        for p in _condition_paths(rule.when):
            assert _known_path(fd, p), f"{rule.code}: unknown path {p} in when"


@pytest.mark.parametrize("fd", FORMS, ids=lambda fd: fd.id)
def test_option_codes_are_unique_strings(fd):
    def walk(fields):
        for f in fields:
            yield f
            yield from walk(f.item_fields)

    for f in walk(fd.fields):
        if f.type in {"choice", "multi"}:
            assert f.options, f"{fd.id}: {f.path} has no options"
        assert len(f.codes) == len(set(f.codes)), f"{fd.id}: {f.path} repeats a code"
        assert all(isinstance(c, str) and c for c in f.codes)


# -- samples ---------------------------------------------------------------------------------

VALID_SAMPLES = sorted(SAMPLES.glob("*.json"))
INVALID_SAMPLES = sorted((SAMPLES / "invalid").glob("*.json"))


def test_there_are_samples():
    names = {p.name for p in VALID_SAMPLES}
    assert {"fiche-liaison.json", "annexe-2.json", "annexe-3.json"} <= names
    for kind in ("reorientation", "suspension", "demande-appui", "actions-cg", "avenant"):
        assert f"fiche-liaison-{kind}.json" in names
    assert INVALID_SAMPLES


@pytest.mark.parametrize("path", VALID_SAMPLES, ids=lambda p: p.name)
def test_every_sample_validates_without_error(path):
    report = validate(catalogue.get(form_of(path.stem)), load(path))
    assert report.model_valid
    assert report.errors == [], [p.as_dict() for p in report.errors]


@pytest.mark.parametrize("path", INVALID_SAMPLES, ids=lambda p: p.name)
def test_every_invalid_sample_fires_the_rule_it_names(path):
    form = form_of(path.stem)
    rule = path.stem[len(form) + 1:]
    fd = catalogue.get(form)
    assert rule in {r.code for r in fd.rules()}, f"{path.name}: {form} has no rule {rule}"
    report = validate(fd, load(path))
    assert rule in {p.rule for p in report.problems}, [p.as_dict() for p in report.problems]


DESCRIBED_ONE_BY_ONE = ("fiche-liaison", "annexe-2", "annexe-3")


def test_samples_readme_describes_the_samples():
    """Samples of the fiche de liaison and the annexes each have their line in samples/README.md."""
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    for path in VALID_SAMPLES + INVALID_SAMPLES:
        if form_of(path.stem) in DESCRIBED_ONE_BY_ONE:
            assert f"`{path.relative_to(SAMPLES).as_posix()}`" in readme, path.name


# -- the definition's own properties ---------------------------------------------------------

def _definition(**changes) -> dict:
    from forms_service.catalogue.yaml_data import load_yaml as load

    raw = load("forms_service.catalogue.forms", "annexe-3.yaml")
    raw.update(changes)
    return raw


def test_a_layout_naming_a_missing_section_fails_at_load():
    from forms_service.catalogue import FormDefinition

    raw = _definition()
    raw["layout"] = dict(raw["layout"], compact_sections=["identification", "grille_complements"])
    with pytest.raises(ValueError, match="annexe-3: layout names sections that do not exist: grille_complements"):
        FormDefinition(raw)


@pytest.mark.parametrize("layout, words", [
    ({"font_sise": 9}, "font_sise"),                                    # a typo
    ({"font_size": "grand"}, "font_size"),                              # a wrong type
    ({"page_break_before_group": {"nulle.part": "X"}}, "fields that do not exist: nulle.part"),
])
def test_a_wrong_layout_fails_at_load(layout, words):
    from forms_service.catalogue import FormDefinition

    with pytest.raises(ValueError, match=re.escape(words)):
        FormDefinition(_definition(layout=layout))


def test_every_layout_is_typed():
    fd = catalogue.get("annexe-3")
    assert fd.layout.grids == ("grille",) and fd.layout.font_size == 8.5
    assert catalogue.get("annexe-2").layout.builder_options() == {}


def test_field_by_path_and_list_rows():
    fd = catalogue.get("cers")
    lst = next(f for f in fd.fields if f.type == "list")
    column = lst.item_fields[0]
    assert fd.field(lst.path) is lst
    assert fd.field(f"{lst.path}.3.{column.path}") is column
    assert fd.field(f"{lst.path}.x.{column.path}") is None
    assert fd.field(f"{lst.path}.3.inconnu") is None and fd.field("inconnu.0.x") is None


def test_a_reference_list_s_headings_are_not_codes_a_field_takes():
    headings = {e.code for e in references.entries("annexe-6") if not e.selectable}
    assert headings and headings.isdisjoint(references.selectable_codes("annexe-6"))
    pap_code = next(c for f in catalogue.get("cers").fields if f.type == "list"
                    for c in f.item_fields if c.options_from == "annexe-6")
    assert pap_code.allowed_codes == references.selectable_codes("annexe-6")
    assert catalogue.get("annexe-3").field("paliers.logement").allowed_codes == set("123456")


def test_which_forms_use_the_ede_grid_is_in_the_definition():
    assert [fd.id for fd in catalogue.forms() if fd.uses_ede_grid] == ["annexe-3"]
