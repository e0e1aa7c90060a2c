"""Échéances (issue 14): each deadline just before, on and just after its day, for
people built for the test; counted with ``rules.cer.add_months`` (the CER rules' month)
and shown on the référent's home page."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from forms_service.echeances import due, due_for
from forms_service.rules.programme import DEFAULT

TODAY = dt.date(2026, 3, 31)
PARAMS = DEFAULT.params()
D = dt.timedelta(days=1)


def person(i=1, **kw):
    base = dict(id=i, cer_type=None, cer_date_debut=None, cer_date_fin=None,
                cer_date_signature=None, orientation_sphere=None, orientation_date=None)
    base.update(kw)
    return SimpleNamespace(**base)


def codes(b, today=TODAY, months_done=0):
    return sorted(e.code for e in due_for(b, today=today, params=PARAMS, months_done=months_done))


@pytest.mark.parametrize("end, expected", [
    (TODAY + dt.timedelta(days=31), []),            # just outside the 30 days
    (TODAY + dt.timedelta(days=30), ["cer_fin"]),   # on the last day of the window
    (TODAY, ["cer_fin"]),                           # ends today
    (TODAY - D, []),                                # already ended
])
def test_cer_ending_within_30_days(end, expected):
    b = person(cer_type="cerp", cer_date_debut=dt.date(2025, 10, 1), cer_date_fin=end,
               cer_date_signature=dt.date(2025, 9, 20))
    assert codes(b) == expected


@pytest.mark.parametrize("start, expected", [
    (dt.date(2025, 11, 1), []),                          # 5 months on 1 April: tomorrow
    (dt.date(2025, 10, 31), ["cers_renouvellement"]),    # 31/10 + 5 months = 31/03: today
    (dt.date(2025, 10, 30), ["cers_renouvellement"]),    # since yesterday
])
def test_cers_renewal_at_five_months(start, expected):
    end = dt.date(2026, 4, 29) + dt.timedelta(days=60)   # far enough: no end-of-CER échéance
    b = person(cer_type="cers", cer_date_debut=start, cer_date_fin=end, cer_date_signature=start)
    assert codes(b) == expected


@pytest.mark.parametrize("sphere, decided, expected", [
    # CERP: one month. 28/02 + 1 month = 28/03 (passed); the deadline day itself is not late.
    ("professionnelle", dt.date(2026, 2, 28), ["contrat_non_signe"]),
    ("professionnelle", dt.date(2026, 3, 1), []),           # deadline 01/04: not yet
    # CERS: two months; 31/01 + 2 months = 31/03 = today: not late yet; 30/01 → 30/03: late.
    ("solidarite", dt.date(2026, 1, 31), []),
    ("solidarite", dt.date(2026, 1, 30), ["contrat_non_signe"]),
    ("solidarite", dt.date(2026, 2, 1), []),
])
def test_contract_not_signed_in_time(sphere, decided, expected):
    b = person(orientation_sphere=sphere, orientation_date=decided)
    assert codes(b) == expected


def test_contract_not_signed_boundaries_cerp():
    decided = dt.date(2026, 2, 28)                     # deadline 28/03
    b = person(orientation_sphere="professionnelle", orientation_date=decided)
    assert codes(b, today=dt.date(2026, 3, 27)) == []
    assert codes(b, today=dt.date(2026, 3, 28)) == []           # on the day: still in time
    assert codes(b, today=dt.date(2026, 3, 29)) == ["contrat_non_signe"]
    signed = person(orientation_sphere="professionnelle", orientation_date=decided,
                    cer_date_signature=dt.date(2026, 3, 20))
    assert codes(signed, today=dt.date(2026, 3, 29)) == []


@pytest.mark.parametrize("today, expected", [
    (dt.date(2026, 5, 31), []),                      # 12 months on 01/07: 31 days ahead
    (dt.date(2026, 6, 1), ["cers_12_mois"]),         # 30 days ahead
    (dt.date(2026, 7, 1), ["cers_12_mois"]),         # on the day
])
def test_cers_reaching_12_months(today, expected):
    # second CERS, after 6 months done: 01/01/2026 → 30/06/2026 reaches 12 months on 01/07
    b = person(cer_type="cers", cer_date_debut=dt.date(2026, 1, 1), cer_date_fin=dt.date(2026, 7, 1),
               cer_date_signature=dt.date(2025, 12, 20))
    got = [c for c in codes(b, today=today, months_done=6) if c == "cers_12_mois"]
    assert got == expected
    assert "cers_12_mois" not in codes(b, today=dt.date(2026, 6, 1), months_done=0)


def test_soonest_first():
    a = person(1, cer_type="cerp", cer_date_debut=dt.date(2025, 10, 1),
               cer_date_fin=TODAY + dt.timedelta(days=20), cer_date_signature=dt.date(2025, 9, 1))
    b = person(2, cer_type="cerp", cer_date_debut=dt.date(2025, 10, 1),
               cer_date_fin=TODAY + dt.timedelta(days=2), cer_date_signature=dt.date(2025, 9, 1))
    assert [e.beneficiary_id for e in due([a, b], today=TODAY, params=PARAMS)] == [2, 1]


def test_on_the_home_page(make_app, login):
    """The home page lists the échéances of the référent's own people, not another's."""
    import json

    from forms_service import db
    from forms_service.beneficiaries.importer import import_beneficiaries
    from tests import people_data

    app = make_app()
    people_data.seed(app)
    today = dt.date.today()
    iso = lambda days: (today + dt.timedelta(days=days)).isoformat()  # noqa: E731
    lines = [people_data.person(11, "arrageois", "ref1@t.example",
                                cer={"type": "cerp", "date_debut": iso(-150), "date_fin": iso(10),
                                     "date_signature": iso(-160)},
                                orientation={"sphere": "professionnelle", "date_decision": iso(-170)}),
             people_data.person(12, "arrageois", "ref2@t.example",
                                cer={"type": "cerp", "date_debut": iso(-150), "date_fin": iso(10)})]
    with app.app_context(), db.session() as s:
        report = import_beneficiaries(s, json.dumps(lines).encode(), "e.json")
        assert report.count("created") == 2, report.as_dict()
    client = app.test_client()
    assert login(client, "ref1@t.example").status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert 'data-code="cer_fin"' in page and "NOM11" in page and "NOM12" not in page


def test_requests_awaiting_an_avis():
    from forms_service.echeances import requests_due

    sent = dt.datetime(2026, 3, 2, 9, 0)
    rows = [SimpleNamespace(id=1, etat="avis_correspondant", beneficiary_id=5, echeance=None, created_at=sent),
            SimpleNamespace(id=2, etat="en_ep", beneficiary_id=5, echeance=dt.date(2026, 4, 9), created_at=sent),
            SimpleNamespace(id=3, etat="traitee", beneficiary_id=5, echeance=None, created_at=sent),
            SimpleNamespace(id=4, etat="a_corriger", beneficiary_id=6, echeance=None, created_at=sent)]
    got = [(e.code, e.date) for e in requests_due(rows)]
    assert got == [("avis_attendu", dt.date(2026, 3, 2)), ("avis_ep", dt.date(2026, 4, 9)),
                   ("a_corriger", dt.date(2026, 3, 2))]


def test_daily_digest_on_the_queue(make_app, login, tmp_path):
    """The référent with something due gets one e-mail (no name in it); switched off on the
    home page, none; the queue runs it once a day."""
    import email
    import json

    from forms_service import db
    from forms_service.beneficiaries.importer import import_beneficiaries
    from forms_service.desk.queue import get_queue
    from forms_service.digest import build_digests, send_digests
    from tests import people_data
    from tests.conftest import csrf_token

    app = make_app()
    settings = app.extensions["forms_service.settings"]
    people_data.seed(app)
    today = dt.date.today()
    line = people_data.person(21, "arrageois", "ref1@t.example",
                              cer={"type": "cerp", "date_debut": (today - dt.timedelta(days=100)).isoformat(),
                                   "date_fin": (today + dt.timedelta(days=5)).isoformat(),
                                   "date_signature": (today - dt.timedelta(days=100)).isoformat()})
    with app.app_context(), db.session() as s:
        report = import_beneficiaries(s, json.dumps([line]).encode(), "d.json")
        person_id = report.lines[0].id
    mails = build_digests(settings, today)
    assert [m.to for m in mails] == [("ref1@t.example",)]
    assert f"bénéficiaire n° {person_id}" in mails[0].body and "NOM21" not in mails[0].body
    assert send_digests(settings, today) == 1
    sent = list((settings.var_dir / "outbox").glob("*.eml"))
    assert len(sent) == 1
    assert "Le CER se termine" in email.message_from_bytes(sent[0].read_bytes()).get_payload(decode=True).decode()

    client = app.test_client()
    assert login(client, "ref1@t.example").status_code == 302
    home = client.get("/").get_data(as_text=True)
    assert 'id="actif" name="actif" type="checkbox" value="y"' in home and "checked" in home
    assert client.post("/echeances/courriel", data={"csrf_token": csrf_token(home)}).status_code == 302
    assert build_digests(settings, today) == []
    from forms_service import digest
    from forms_service.desk import queue as desk_queue

    assert "desk.daily" in {t.__name__ for t in get_queue(settings).huey._registry._periodic_tasks}
    assert digest._daily in desk_queue.DAILY
