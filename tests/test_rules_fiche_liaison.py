"""Rules of the fiche de liaison (spec/fiche-liaison.md, "Rules" table), request by request, and its
option lists against the spec's own tables."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from forms_service.catalogue import catalogue
from forms_service.validation import validate

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SPEC_CANDIDATES = [ROOT.parent / "shared" / "spec" / "fiche-liaison.md",
                   Path("/work/shared/spec/fiche-liaison.md")]

FD = catalogue.get("fiche-liaison")
RULES = FD.rules()
REQUEST_TYPES = ["reorientation", "suspension", "demande-appui", "actions-cg", "avenant"]
VALID = ["fiche-liaison.json"] + [f"fiche-liaison-{t}.json" for t in REQUEST_TYPES]


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def codes(report) -> set[str]:
    return {p.rule for p in report.problems}


def spec_text() -> str:
    for path in SPEC_CANDIDATES:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    pytest.skip("shared/spec/fiche-liaison.md is not beside this checkout")


# -- every rule fires on its invalid sample, and only it --------------------------------------

@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_fires_on_its_invalid_sample(rule):
    path = SAMPLES / "invalid" / f"fiche-liaison-{rule.code}.json"
    assert path.is_file(), f"write {path.relative_to(ROOT)}: a rule without a failing sample is untested"
    report = validate(FD, json.loads(path.read_text(encoding="utf-8")))
    assert report.model_valid
    assert codes(report) == {rule.code}, [p.as_dict() for p in report.problems]
    assert {p.severity for p in report.problems} == {rule.severity}
    assert report.valid is (rule.severity == "warning")


def test_no_invalid_sample_names_a_rule_that_does_not_exist():
    known = {r.code for r in RULES}
    for path in (SAMPLES / "invalid").glob("fiche-liaison-*.json"):
        assert path.stem.removeprefix("fiche-liaison-") in known, path.name


@pytest.mark.parametrize("name", VALID)
def test_valid_samples_have_no_problem(name):
    report = validate(FD, sample(name))
    assert report.valid and report.problems == [], [p.as_dict() for p in report.problems]


def test_the_alias_annexe_7_validates_the_same():
    fd = catalogue.get("annexe-7")
    assert fd is FD
    data = sample("fiche-liaison-suspension.json")
    assert validate(fd, data).as_dict() == validate(FD, data).as_dict()


# -- each request type: valid as sampled, broken in its own way ---------------------------------

def _set(data: dict, path: str, value):
    node = data
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return data


BROKEN = {
    # request type: [(path, value, rule that must fire)]
    "reorientation": [("reorientation.vers", None, "reorientation_orientation"),
                      ("reorientation.motifs", [], "reorientation_motif_manquant"),
                      ("pieces_jointes.ede", False, "reorientation_ede_jointe"),
                      ("objet", [], "reorientation_sans_passage_ep")],
    "suspension": [("suspension.motifs", [], "suspension_motif_manquant"),
                   ("signature_referent.signee", False, "suspension_signature_referent"),
                   ("pieces_jointes.convocations", False, "suspension_convocations_jointes"),
                   ("objet", [], "suspension_sans_passage_ep")],
    "demande-appui": [("objet_detail", None, "demande_appui_explication"),
                      ("objet", ["passage_ep"], "passage_ep_sans_demande")],
    "actions-cg": [("actions_cg", [], "actions_cg_aucune_action"),
                   ("signature_referent.signee", False, "actions_cg_signature_referent"),
                   ("signature_beneficiaire.signee", False, "actions_cg_signature_beneficiaire"),
                   ("pieces_jointes.outils_suivi", False, "actions_cg_outils_suivi"),
                   ("pieces_jointes.cv", False, "actions_cg_cv_cui")],
    "avenant": [("objet_detail", "", "avenant_explication"),
                ("signature_referent.signee", False, "avenant_signature_referent"),
                ("signature_beneficiaire.signee", False, "avenant_signature_beneficiaire"),
                ("pieces_jointes.pap_modifie", False, "avenant_pap_modifie"),
                ("cer.en_cours", False, "avenant_cer_en_cours"),
                ("signature_referent.date", "2011-09-01", "avenant_cer_expire"),
                ("pieces_jointes.outils_suivi", False, "avenant_actions_cg_outils_suivi")],
}


@pytest.mark.parametrize("kind", REQUEST_TYPES)
def test_request_type_valid_then_broken(kind):
    data = sample(f"fiche-liaison-{kind}.json")
    assert validate(FD, data).valid
    for path, value, rule in BROKEN[kind]:
        broken = _set(copy.deepcopy(data), path, value)
        report = validate(FD, broken)
        assert not report.valid, (kind, path)
        assert rule in {p.rule for p in report.errors}, (kind, path, [p.as_dict() for p in report.problems])


def test_suspension_without_the_referents_signature_is_invalid():
    data = sample("fiche-liaison-suspension.json")
    data["signature_referent"]["signee"] = False
    report = validate(FD, data)
    assert not report.valid
    [problem] = report.problems
    assert (problem.rule, problem.path, problem.severity) == \
        ("suspension_signature_referent", "signature_referent.signee", "error")
    assert "signature du référent" in problem.message


def test_unknown_signature_is_a_warning_to_check():
    data = sample("fiche-liaison-suspension.json")
    del data["signature_referent"]["signee"]            # nobody said whether it is signed
    report = validate(FD, data)
    assert report.valid
    [problem] = report.problems
    assert (problem.rule, problem.severity) == ("suspension_signature_referent_a_verifier", "warning")


@pytest.mark.parametrize("kind", ["actions-cg", "avenant"])
def test_beneficiary_signature_unknown_is_a_warning(kind):
    data = sample(f"fiche-liaison-{kind}.json")
    data["signature_beneficiaire"]["signee"] = None
    report = validate(FD, data)
    assert report.valid and {p.severity for p in report.problems} == {"warning"}
    assert all(p.rule.endswith("_signature_beneficiaire_a_verifier") for p in report.problems)


def test_demande_appui_needs_no_signature_and_may_be_free_text_only():
    data = sample("fiche-liaison-demande-appui.json")
    assert "signature_referent" not in data and "signature_beneficiaire" not in data
    data["objet"] = []                                  # only the free text, as the procedure allows
    assert validate(FD, data).problems == []


def test_an_avenant_is_checked_on_the_date_of_the_request_not_today():
    import datetime as dt

    data = sample("fiche-liaison-avenant.json")
    assert validate(FD, data, today=dt.date(2030, 1, 1)).valid
    del data["signature_referent"]["date"]              # no date on the request: today's date is used
    assert "avenant_cer_expire" in codes(validate(FD, data, today=dt.date(2030, 1, 1)))
    assert validate(FD, data, today=dt.date(2011, 4, 18)).valid


def test_actions_cg_in_an_avenant_do_not_ask_to_tick_actions_cg():
    data = sample("fiche-liaison-avenant.json")
    assert data["actions_cg"] and "actions_cg" not in data["objet"]
    assert "actions_cg_non_cochee" not in codes(validate(FD, data))


def test_cer_end_before_start():
    data = sample("fiche-liaison-demande-appui.json")
    data["cer"] = {"date_debut": "2011-06-01", "date_fin": "2011-06-01"}
    assert codes(validate(FD, data)) == {"cer_dates_incoherentes"}


# -- option lists and labels against the spec --------------------------------------------------

def _norm(text: str) -> str:
    return " ".join(text.replace("’", "'").split())


def _clean_label(label: str) -> str:
    """A table cell without the spec's notes: "(+ text `x`)", "(footnote 3: ...)"."""
    return _norm(re.sub(r"\s*\((?:\+ text|footnote)[^()]*(?:\([^()]*\)[^()]*)*\)\s*$", "", label))


def _option_fields() -> dict:
    return {f.path: f for f in FD.fields if f.type in {"choice", "multi"} and not f.options_from}


def parse_spec_options(text: str) -> tuple[dict, dict]:
    """{field: [(code, label)]} and {field: [(heading, sub-heading)]} from the spec's markdown
    tables and inline lists. A table or an inline `code` "label" list belongs to the last option
    field the text names before it."""
    fields = _option_fields()
    paths = {f.path for f in FD.fields}
    options: dict[str, list] = {}
    groups: dict[str, list] = {}
    current = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("|"):
            for m in re.finditer(r"`([\w.]+)`", lines[i]):
                if m.group(1) in fields:
                    current = m.group(1)
            i += 1
            continue
        header = [c.strip() for c in lines[i].strip().strip("|").split("|")]
        if "code" not in header:                        # the Rules table
            while i < len(lines) and lines[i].startswith("|"):
                i += 1
            continue
        code_col = header.index("code")
        group_col = next((n for n, h in enumerate(header) if h.startswith("group")), None)
        previous = (None, None)
        i += 2                                          # header and |---| lines
        while i < len(lines) and lines[i].startswith("|"):
            cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
            options.setdefault(current, []).append((cells[code_col].strip("`"),
                                                    _clean_label(cells[code_col + 1])))
            if group_col is not None:
                raw = cells[group_col]
                if raw == "…":
                    group = previous
                elif " / " in raw:
                    head, sub = raw.split(" / ", 1)
                    group = (previous[0] if head == "…" else _norm(head), _norm(sub))
                else:
                    group = (None, _norm(raw))
                groups.setdefault(current, []).append(group)
                previous = group
            i += 1
    # inline lists, on the prose without its tables, whitespace collapsed (labels may span lines)
    flat = " ".join(" ".join(l for l in lines if not l.startswith("|")).split())
    current = None
    for m in re.finditer(r'`([\w.]+)`(\s*"([^"]*)")?', flat):
        token, label = m.group(1), m.group(3)
        if token in fields:
            current = token
        elif label is not None and current is not None and token not in paths:
            pair = (token, _norm(label))
            if pair not in options.setdefault(current, []):
                options[current].append(pair)
    return options, groups


def test_spec_parser_finds_the_lists():
    options, _ = parse_spec_options(spec_text())
    assert {"objet", "reorientation.motifs", "suspension.motifs", "actions_cg", "reorientation.vers",
            "avis_ep", "decision_president", "retour_structure"} <= set(options)
    assert len(options["actions_cg"]) == 14 + 17


def _printed_label(label: str) -> str:
    """A label as the spec quotes it: the French space before a colon is typography, not a
    different label (footnote calls are no part of a label: an option's ``footnote``)."""
    return _norm(re.sub(r"\s+:", ":", label))


def test_every_option_list_carries_exactly_the_spec_codes_and_labels():
    options, _ = parse_spec_options(spec_text())
    text = spec_text()
    codes_only = {
        "avenant": re.search(r"`avenant` checkboxes `(\w+)` / `(\w+)`", text).groups(),
        "referent.type": re.search(r"`referent\.type`: `(\w+)` \| `(\w+)`", text).groups(),
    }
    for path, field in _option_fields().items():
        if path in codes_only:
            assert tuple(field.codes) == codes_only[path], path
            continue
        assert path in options, f"{path}: option list not found in the spec"
        ours = [(o.code, _printed_label(o.label)) for o in field.options]
        assert ours == [(c, _printed_label(l)) for c, l in options[path]], path


def test_action_groups_follow_the_printed_headings():
    text = spec_text()
    _, groups = parse_spec_options(text)
    page3_heading = _norm(re.search(r"^(ACTION FAVORISANT[^\n]*)$", text, re.M).group(1))
    field = FD.field("actions_cg")
    for option, (head, sub) in zip(field.options, groups["actions_cg"]):
        our_head, our_sub = (_norm(x) for x in option.group.split("|"))
        assert our_sub.startswith(sub), (option.code, our_sub, sub)   # the spec abbreviates « Axe 1 »
        assert our_head == (head or page3_heading), option.code


def _spec_field_labels(text: str) -> dict[str, str]:
    """Page 1's "`path` Label · `path` Label" lists."""
    page1 = text.split("## Page 1", 1)[1].split("SOLLICITATION", 1)[0]
    labels = {}
    for paragraph in re.split(r"\n\s*\n", page1):
        flat = " ".join(paragraph.split())
        flat = re.sub(r"^[^`]*?:\s*(?=`)", "", flat)    # "Header block (text): "
        for segment in flat.split(" · "):
            m = re.match(r"`([\w.]+)` (.+)$", segment.strip())
            if m:
                labels[m.group(1)] = m.group(2)
    return labels


def test_page_1_field_labels_are_the_official_wording():
    labels = _spec_field_labels(spec_text())
    assert len(labels) >= 20
    for path, raw in labels.items():
        field = FD.field(path)
        assert field is not None, path
        raw = _norm(raw)
        accepted = {raw, raw.rstrip("."), re.sub(r"\s*\([^()]*(?:`[^`]*`[^()]*)*\)\.?$", "", raw)}
        assert _norm(field.label) in accepted, (path, field.label, raw)


def test_labels_quoted_in_the_spec_are_the_field_labels():
    """Pages 2–3: « "A :" `signature_referent.lieu` », « `ep_motif_detail` — "Motif de la demande :" »."""
    flat = _norm(spec_text())
    quoted = re.findall(r'"([^"]+)" (?:zone |text )?`([\w.]+)`', flat)
    quoted += [(label, path) for path, label in re.findall(r'`([\w.]+)` (?:checkbox |— )"([^"]+)"', flat)]
    checked = 0
    for label, path in quoted:
        field = FD.field(path)
        if field is None:
            continue
        assert _printed_label(field.label) == _printed_label(label), (path, field.label, label)
        checked += 1
    assert checked >= 10


def test_footnotes_are_printed_as_written():
    text = _norm(spec_text())
    notes = _norm(" ".join(s.note or "" for s in FD.sections))
    for footnote in re.findall(r'Footnote \d: "([^"]+)"', text) + re.findall(r'footnote \d: "([^"]+)"', text):
        assert _norm(footnote) in notes, footnote
