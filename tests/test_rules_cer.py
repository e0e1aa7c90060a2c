"""The CERS and CERP definitions (Annexe 5): their rules, boundaries and samples.

Every rule a contract declares is broken once here (``BREAKERS``) and must fire;
the valid samples must raise nothing. No app, no database: only the catalogue
and ``validate``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest

from forms_service.catalogue import catalogue
from forms_service.validation import validate

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
TODAY = dt.date(2011, 6, 1)


def sample(form_id: str) -> dict:
    return json.loads((SAMPLES / f"{form_id}.json").read_text(encoding="utf-8"))


def check(form_id: str, data: dict):
    return validate(catalogue.get(form_id), data, today=TODAY)


def fired(form_id: str, data: dict) -> set[str]:
    return {p.rule for p in check(form_id, data).problems}


def setp(data: dict, path: str, value) -> dict:
    """Set a dotted path (``pap.0.code``) in place; returns ``data``."""
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


def action(code: str, theme: str, start: str, end: str, **extra) -> dict:
    row = {"theme": theme, "code": code, "date_debut": start, "date_fin": end,
           "engagements_referent": "Accompagner la démarche et faire le point à chaque rendez-vous",
           "engagements_beneficiaire": "Effectuer la démarche et apporter les justificatifs"}
    row.update(extra)
    return row


def edits(*pairs):
    """A breaker setting several paths."""
    def apply(d):
        for path, value in pairs:
            setp(d, path, value)
    return apply


def sample_with(form_id: str, *pairs) -> dict:
    """The valid sample with some paths set."""
    d = sample(form_id)
    edits(*pairs)(d)
    return d


def offer(**extra) -> dict:
    row = {"offre": "Agent de quai H/F, CDD 3 mois, Béthune", "raisonnable": "oui", "domaine": "Logistique (N1103)",
           "moyens": "Offre transmise par le référent", "resultat": "non_atteint",
           "motif": "Le bénéficiaire n'a pas donné suite à l'offre"}
    row.update(extra)
    return row


# -- one way to break each rule, per form ------------------------------------------------

COMMON = {
    "champ_obligatoire": edits(("beneficiaire.nom", None)),
    "cer_dates_incoherentes": edits(("cer.date_fin", "2011-01-15")),
    "pap_aucune_action": edits(("pap", [])),
    "pap_theme_incoherent": edits(("pap.0.theme", "B")),
    "pap_ligne_incomplete": edits(("pap.1.date_fin", None)),
    "pap_dates_incoherentes": edits(("pap.2.date_fin", "2011-03-15")),
    "pap_detail_manquant": edits(("pap.2.engagements_referent", None)),
    "pap_derogation_manquante": lambda d: d["pap"].append(
        action("G.4.5", "G", d["cer"]["date_debut"], d["cer"]["date_fin"])),
    "signature_referent_manquante": edits(("signature_referent.signee", False)),
    "signature_referent_manquante_a_verifier": edits(("signature_referent.signee", None)),
    "signature_beneficiaire_manquante": edits(("signature_beneficiaire.signee", False)),
    "signature_beneficiaire_manquante_a_verifier": edits(("signature_beneficiaire.signee", None)),
    "ede_non_realisee": edits(("pieces_jointes.ede", False)),
    "ede_non_realisee_a_verifier": edits(("pieces_jointes.ede", None)),
    "decision_rejet_sans_motif": edits(("decision_president", "rejet")),
}

BREAKERS = {
    "cers": {
        **COMMON,
        "cers_duree": edits(("cer.date_fin", "2011-08-31")),
        "cers_renouvellement": edits(("cer.renouvellement", 2)),
        "cers_signature_hors_delai": edits(("cer.date_signature", "2011-04-08")),
        "cers_objectifs_manquants": edits(("plan.objectifs", "")),
        "pap_action_hors_sphere": edits(("pap.3", action("H.1.3", "H", "2011-06-01", "2011-09-30"))),
        "pap_aucune_action_duree_contrat": edits(("pap.0.date_fin", "2011-08-31")),
        "pap_action_seule": edits(("pap", [action("A.2", "A", "2011-04-01", "2011-09-30")])),
        "pap_action_seule_a_verifier": edits(("pap", [action("B.1", "B", "2011-04-01", "2011-09-30")])),
    },
    "cerp": {
        **COMMON,
        "cerp_duree": edits(("cer.date_fin", "2011-09-30")),
        "cerp_signature_hors_delai": edits(("cer.date_signature", "2011-06-10")),
        "cerp_metier_manquant": edits(("metiers", [])),
        "cerp_metier_incomplet": edits(("metiers.1.salaire_attendu", None)),
        "cerp_zone_geographique_manquante": edits(("situation_professionnelle.zone_geographique", None)),
        "cerp_conclusion_manquante": edits(("plan.conclusion_entretien", None)),
        "pap_action_hors_sphere": edits(("pap.3", action("A.1.1", "A", "2011-06-15", "2011-07-31"))),
        "pap_aucune_action_duree_contrat": edits(("pap.0.date_debut", "2011-07-01")),
        "pap_action_seule": edits(("pap", [action("G.1", "G", "2011-06-01", "2011-11-30")])),
        "pap_action_seule_a_verifier": edits(("pap", [action("B.1", "B", "2011-06-01", "2011-11-30")])),
        "offres_refus_multiples": lambda d: d["offres"].extend([offer(refusee=True) for _ in range(3)]),
        "offre_motif_manquant": edits(("offres.1.motif", None)),
        "offre_refusee_raisonnable_non_renseigne": edits(("offres.2.raisonnable", None)),
    },
}

CASES = [(form_id, code) for form_id, table in BREAKERS.items() for code in table]


def broken(form_id: str, code: str) -> dict:
    data = copy.deepcopy(sample(form_id))
    BREAKERS[form_id][code](data)
    return data


@pytest.mark.parametrize("form_id", ["cers", "cerp"])
def test_every_declared_rule_has_a_breaker(form_id):
    declared = {r.code for r in catalogue.get(form_id).rules()}
    assert declared == set(BREAKERS[form_id])


@pytest.mark.parametrize("form_id", ["cers", "cerp"])
def test_valid_sample_raises_nothing(form_id):
    report = check(form_id, sample(form_id))
    assert report.model_valid
    assert [p.as_dict() for p in report.problems] == []


@pytest.mark.parametrize(("form_id", "code"), CASES)
def test_rule_fires_on_broken_data(form_id, code):
    report = check(form_id, broken(form_id, code))
    assert report.model_valid, [p.as_dict() for p in report.problems]
    hits = [p for p in report.problems if p.rule == code]
    assert hits, [p.as_dict() for p in report.problems]
    rule = next(r for r in catalogue.get(form_id).rules() if r.code == code)
    assert all(p.severity == rule.severity for p in hits)
    assert all(p.message for p in hits)


def test_rules_declare_their_source():
    for form_id in ("cers", "cerp"):
        for r in catalogue.get(form_id).rules():
            assert r.source, f"{form_id}: {r.code} has no source"
            assert r.severity in ("error", "warning")


# -- samples/invalid: each file breaks exactly its named rule ------------------------------

INVALID = sorted((SAMPLES / "invalid").glob("cer[sp]-*.json"))


def test_invalid_samples_exist():
    assert {p.name.split("-", 1)[0] for p in INVALID} == {"cers", "cerp"}


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_sample_breaks_its_rule_only(path):
    form_id, code = path.stem.split("-", 1)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert fired(form_id, data) == {code}


# -- durations -------------------------------------------------------------------------

def _dated(form_id: str, start: str, end: str) -> dict:
    return sample_with(form_id, ("cer.date_debut", start), ("cer.date_fin", end))


@pytest.mark.parametrize(("end", "ok"), [
    ("2011-06-30", True), ("2011-07-01", True),      # both conventions of a 6-month contract
    ("2011-05-31", False), ("2011-06-01", False),   # 5 months
    ("2011-07-31", False), ("2011-08-01", False),   # 7 months
    ("2011-06-15", False),                           # not a whole number of months
])
def test_cers_duration_boundaries(end, ok):
    assert ("cers_duree" not in fired("cers", _dated("cers", "2011-01-01", end))) is ok


@pytest.mark.parametrize(("end", "ok"), [
    ("2011-03-31", True), ("2011-04-01", True),
    ("2011-06-30", True), ("2011-07-01", True),
    ("2011-09-30", True), ("2011-10-01", True),
    ("2011-12-31", True), ("2012-01-01", True),
    ("2011-04-30", False), ("2011-05-01", False),   # 4 months
    ("2011-01-31", False),                           # 1 month
    ("2012-01-31", False),                           # 13 months
])
def test_cerp_duration_boundaries(end, ok):
    assert ("cerp_duree" not in fired("cerp", _dated("cerp", "2011-01-01", end))) is ok


def test_duration_message_names_the_months():
    report = check("cers", _dated("cers", "2011-01-01", "2011-07-31"))
    p = next(p for p in report.problems if p.rule == "cers_duree")
    assert p.path == "cer.date_fin" and "7 mois" in p.message and p.severity == "error"


def test_end_before_start_is_one_error_not_a_duration():
    codes = fired("cers", _dated("cers", "2011-04-01", "2011-03-01"))
    assert "cer_dates_incoherentes" in codes and "cers_duree" not in codes


# -- signature deadline ------------------------------------------------------------------

def _signed(form_id: str, decision: str, signed: str) -> dict:
    return sample_with(form_id, ("orientation.date_decision", decision), ("cer.date_signature", signed))


@pytest.mark.parametrize(("form_id", "code", "signed", "late"), [
    ("cerp", "cerp_signature_hors_delai", "2011-02-15", False),   # exactly one month
    ("cerp", "cerp_signature_hors_delai", "2011-02-16", True),
    ("cers", "cers_signature_hors_delai", "2011-03-15", False),   # exactly two months
    ("cers", "cers_signature_hors_delai", "2011-03-16", True),
    ("cers", "cers_signature_hors_delai", "2011-01-15", False),   # the same day
])
def test_signature_deadline_boundaries(form_id, code, signed, late):
    report = check(form_id, _signed(form_id, "2011-01-15", signed))
    hits = [p for p in report.problems if p.rule == code]
    assert bool(hits) is late
    assert all(p.severity == "warning" and p.path == "cer.date_signature" for p in hits)


def test_signature_deadline_at_month_end():
    # 31 January + 1 month = 28 February (2011)
    assert "cerp_signature_hors_delai" not in fired("cerp", _signed("cerp", "2011-01-31", "2011-02-28"))
    assert "cerp_signature_hors_delai" in fired("cerp", _signed("cerp", "2011-01-31", "2011-03-01"))


def test_signed_before_the_orientation_decision():
    report = check("cers", _signed("cers", "2011-02-07", "2011-02-01"))
    p = next(p for p in report.problems if p.rule == "cers_signature_hors_delai")
    assert "avant la décision d'orientation" in p.message


# -- renewals ----------------------------------------------------------------------------

def _renewal(form_id: str, n: int, months_before: int) -> dict:
    return sample_with(form_id, ("cer.renouvellement", n), ("cer.mois_precedents", months_before))


@pytest.mark.parametrize(("n", "months_before", "path"), [
    (0, 0, None),
    (1, 6, None),                          # the one renewal: 6 + 6 = 12 months
    (2, 12, "cer.renouvellement"),         # a second renewal
    (1, 7, "cer.mois_precedents"),         # 7 + 6 > 12 months in a row
])
def test_cers_renewal_limits(n, months_before, path):
    hits = [p for p in check("cers", _renewal("cers", n, months_before)).problems
            if p.rule == "cers_renouvellement"]
    assert [p.path for p in hits] == ([path] if path else [])


def test_cerp_has_no_renewal_limit():
    assert fired("cerp", _renewal("cerp", 3, 24)) == set()


# -- the PAP -------------------------------------------------------------------------------

def _pap(form_id: str, rows: list[dict]) -> dict:
    d = sample(form_id)
    d["pap"] = rows
    return d


def test_pap_sphere_cers_refuses_h13():
    report = check("cers", _pap("cers", [action("H.1.3", "H", "2011-04-01", "2011-09-30")]))
    p = next(p for p in report.problems if p.rule == "pap_action_hors_sphere")
    assert p.path == "pap.0.code" and "H.1.3" in p.message


def test_pap_sphere_cerp_refuses_a11():
    report = check("cerp", _pap("cerp", [action("A.1.1", "A", "2011-06-01", "2011-11-30")]))
    assert [p.path for p in report.problems if p.rule == "pap_action_hors_sphere"] == ["pap.0.code"]


def test_pap_sphere_accepts_each_sphere_own_codes():
    assert fired("cers", _pap("cers", [action("A.1.1", "A", "2011-04-01", "2011-09-30")])) == set()
    assert fired("cerp", _pap("cerp", [action("H.1.3", "H", "2011-06-01", "2011-11-30")])) == set()


def test_pap_not_alone_oui_is_an_error():
    report = check("cers", _pap("cers", [action("D.2", "D", "2011-04-01", "2011-09-30")]))
    hits = [p for p in report.problems if p.rule == "pap_action_seule"]
    assert [(p.path, p.severity) for p in hits] == [("pap.0.code", "error")]
    assert "ne peut être la seule action" in hits[0].message


def test_pap_not_alone_parfois_is_a_warning():
    report = check("cers", _pap("cers", [action("B.1", "B", "2011-04-01", "2011-09-30")]))
    assert [(p.rule, p.severity) for p in report.problems] == [("pap_action_seule_a_verifier", "warning")]


def test_pap_not_alone_is_fine_with_another_action():
    rows = [action("D.2", "D", "2011-04-01", "2011-05-31"), action("D.1.1", "D", "2011-04-01", "2011-09-30")]
    assert fired("cers", _pap("cers", rows)) == set()


def test_pap_blank_rows_do_not_count_as_actions():
    d = _pap("cers", [{}, action("A.2", "A", "2011-04-01", "2011-09-30"), {"derogation": False}])
    assert fired("cers", d) == {"pap_action_seule"}


def test_g45_needs_the_derogation():
    rows = [action("G.4.5", "G", "2011-04-01", "2011-09-30")]
    report = check("cers", _pap("cers", rows))
    assert [(p.rule, p.path) for p in report.problems] == [("pap_derogation_manquante", "pap.0.derogation")]
    rows[0]["derogation"] = True
    assert fired("cers", _pap("cers", rows)) == set()


def test_full_length_action_tolerates_a_few_days():
    # 2011-04-01 → 2011-09-30 contract; an action starting a week late still counts
    assert fired("cers", _pap("cers", [action("A.1.1", "A", "2011-04-08", "2011-09-30")])) == set()
    assert "pap_aucune_action_duree_contrat" in fired(
        "cers", _pap("cers", [action("A.1.1", "A", "2011-04-09", "2011-09-30")]))


# -- fiche de suivi emploi ------------------------------------------------------------------

@pytest.mark.parametrize(("refused", "flagged"), [(2, False), (3, True)])
def test_reasonable_offers_refused(refused, flagged):
    d = sample("cerp")
    d["offres"] = [offer(refusee=True) for _ in range(refused)] + [offer()]
    report = check("cerp", d)
    hits = [p for p in report.problems if p.rule == "offres_refus_multiples"]
    assert bool(hits) is flagged
    assert all(p.severity == "warning" and p.path == "offres" for p in hits)
    assert report.derived["offres_raisonnables_refusees"] == refused


def test_refused_unreasonable_offers_do_not_count():
    d = sample("cerp")
    d["offres"] = [offer(refusee=True, raisonnable="non") for _ in range(4)]
    assert "offres_refus_multiples" not in fired("cerp", d)


# -- the model -------------------------------------------------------------------------------

def _model_problems(form_id: str, data: dict) -> list[tuple[str, str]]:
    report = check(form_id, data)
    assert not report.model_valid
    return [(p.rule, p.path) for p in report.problems]


@pytest.mark.parametrize("form_id", ["cers", "cerp"])
def test_unknown_action_code(form_id):
    assert _model_problems(form_id, setp(sample(form_id), "pap.0.code", "Z.9")) == [("code_inconnu", "pap.0.code")]


def test_theme_heading_is_not_an_action():
    assert _model_problems("cers", setp(sample("cers"), "pap.0.code", "A.1")) == [("code_inconnu", "pap.0.code")]


def test_unknown_theme_and_rome_code():
    d = setp(sample("cerp"), "pap.0.theme", "K")
    setp(d, "metiers.0.code_rome", "Z9999")
    assert _model_problems("cerp", d) == [("code_inconnu", "metiers.0.code_rome"), ("code_inconnu", "pap.0.theme")]


@pytest.mark.parametrize(("path", "value"), [("cer.date_fin", "30/09/2011"), ("pap.1.date_debut", "2011-02-30")])
def test_malformed_date(path, value):
    assert _model_problems("cers", setp(sample("cers"), path, value)) == [("date_invalide", path)]


def test_model_limits():
    d = sample("cerp")
    d["metiers"].append(dict(d["metiers"][0]))
    setp(d, "plan.conclusion_entretien", "x" * 801)
    setp(d, "cer.renouvellement", -1)
    d["inconnu"] = 1
    assert sorted(_model_problems("cerp", d)) == sorted([
        ("nombre_maximal", "metiers"), ("longueur_maximale", "plan.conclusion_entretien"),
        ("valeur_hors_bornes", "cer.renouvellement"), ("champ_inconnu", "inconnu")])


@pytest.mark.parametrize("form_id", ["cers", "cerp"])
def test_json_schema(form_id):
    schema = catalogue.get(form_id).json_schema()
    assert schema["$id"] == f"urn:rsa-forms:{form_id}"
    assert schema["title"].startswith("Contrat d'Engagements Réciproques – ")
    text = json.dumps(schema, ensure_ascii=False)
    assert "G.4.5" in text and '"A.1"' not in text   # selectable actions only


# -- the definitions ---------------------------------------------------------------------------

def _all_fields(fields):
    for f in fields:
        yield f
        yield from _all_fields(f.item_fields)


@pytest.mark.parametrize(("form_id", "sections"), [
    ("cers", ["etat_civil", "contrat", "plan_action", "pap", "referent", "remarques_beneficiaire",
              "president", "pieces_jointes"]),
    ("cerp", ["etat_civil", "contrat", "situation_professionnelle", "inscriptions", "profil_professionnel",
              "metiers", "plan_accompagnement", "pap", "suivi_emploi", "referent", "remarques_beneficiaire",
              "president", "pieces_jointes"]),
])
def test_definition_shape(form_id, sections):
    fd = catalogue.get(form_id)
    assert [s.id for s in fd.sections] == sections
    assert fd.annexe == "Annexe 5" and fd.template == f"{form_id}.docx" and fd.pages is None
    for f in _all_fields(fd.fields):
        if f.type == "text":
            assert f.max_length, f"{form_id}: {f.path} has no max_length"
    pap = fd.field("pap")
    assert [c.path for c in pap.item_fields] == [
        "theme", "code", "engagements_referent", "engagements_beneficiaire", "organismes",
        "date_debut", "date_fin", "resultat", "bilan", "derogation"]
    assert [o.code for o in fd.field("pap.0.theme").options] == list("ABCDEFGHIJ")
    assert fd.field("pap.0.derogation").provenance == "inferred"
    assert fd.field("decision_president").codes == ["validation", "rejet"]


def test_cerp_fiche_de_suivi():
    fd = catalogue.get("cerp")
    section = next(s for s in fd.sections if s.id == "suivi_emploi")
    assert "ne peut refuser plus de deux offres raisonnables" in section.note
    assert fd.field("offres.0.refusee").provenance == "inferred"
    assert fd.field("offres.0.resultat").codes == ["atteint", "partiellement_atteint", "non_atteint"]
    assert fd.field("metiers").max_items == 2


def test_catalogue_lists_the_contracts_first():
    assert [fd.id for fd in catalogue.forms()][:3] == ["cers", "cerp", "fiche-liaison"]


# -- the CERS box « EDE réalisée » (issue 16) settles ede_non_realisee ------------------

@pytest.mark.parametrize("box, attachment, expected", [
    (True, None, set()),          # ticked on the contract: done, whatever the attachments say
    (True, False, set()),
    (False, None, {"ede_non_realisee_a_verifier"}),   # not ticked: the attachment decides
    ("absent", False, {"ede_non_realisee"}),
    (False, True, set()),
])
def test_cers_ede_box_settles_the_ede_rule(box, attachment, expected):
    data = sample_with("cers", ("pieces_jointes.ede", attachment))
    if box != "absent":
        data["ede_realisee"] = box
    assert {c for c in fired("cers", data) if c.startswith("ede_non_realisee")} == expected
