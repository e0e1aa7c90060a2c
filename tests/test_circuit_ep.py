"""The équipe pluridisciplinaire (issue 13, first part), end to end through the pages and the
API on a real SQLite database, the service's clock under the test's control
(``FORMS_SERVICE_CLOCK_NOW``): réorientation and suspension requests favoured by their
correspondant wait for the EP of their territory only; the secretariat creates a session and
schedules them (a request on one open agenda only: refused by the page and by the database,
SQLite and PostgreSQL); the one-month deadline shows late / due within 7 days; the EP's avis
goes through the circuit's avis (the printed field's max_length) back to the référent
(« Mes demandes », an e-mail); the month passed, « réputé rendu » is recorded by the CLI and
by the queue's periodic job and the request moves on to the decision."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from forms_service.circuit.machine import machine
from forms_service.circuit.service import comment_limit
from tests.circuit_data import headers, sample
from tests.conftest import csrf_token
from tests.ep_data import START, seed_ep, to_ep
from tests.test_circuit_web import _login


def _mails(app) -> list[dict]:
    folder = Path(app.extensions["forms_service.settings"].var_dir) / "outbox"
    out = []
    for f in sorted(folder.glob("*.eml")):
        msg = message_from_bytes(f.read_bytes(), policy=policy.default)
        out.append({"to": str(msg["To"]), "subject": str(msg["Subject"]), "body": msg.get_content()})
    return out


def _listed(page: str, rid: int) -> bool:
    """In the agenda's table of requests waiting to be scheduled."""
    waiting = page[page.index('id="t-attente"'):page.index('id="t-seances"')]
    return f'href="/ep/demandes/{rid}"' in waiting


def _post(client, url, page_url, **data):
    token = csrf_token(client.get(page_url).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **data})


@pytest.fixture
def ep_app(make_app):
    app = make_app(clock_now=START)        # Monday 4 January 2027, 09:00 UTC
    people = seed_ep(app)
    return app, people


def test_agenda_session_avis_and_deadline_end_to_end(ep_app, runner):
    from forms_service import clock

    app, people = ep_app
    api = app.test_client()
    susp = to_ep(api, people, "arr1", "suspension")
    reo = to_ep(api, people, "arr2", "reorientation")
    other = to_ep(api, people, "art1", "reorientation", territory="art")
    cg = api.post("/api/v1/requests", json={"beneficiaire": people["b"]["arr3"],
                                           "fiche": sample("actions-cg")},
                  headers=headers(people["keys"]["ref.arr@c.example"])).get_json()["id"]

    sec = app.test_client()
    _login(sec, "ep.arr@c.example")
    page = sec.get("/ep/").get_data(as_text=True)
    assert _listed(page, susp) and _listed(page, reo)
    assert not _listed(page, other) and not _listed(page, cg)        # other territory; not at en_ep
    assert "04/02/2027" in page and "Dans les délais" in page          # one month after referral
    assert sec.get(f"/ep/demandes/{other}").status_code == 404

    # a session, then the suspension on its agenda
    r = _post(sec, "/ep/seances", "/ep/", date="2027-01-20", heure="14:00", lieu="MDS de l'Arrageois")
    assert r.status_code == 302, r.get_data(as_text=True)
    url = r.headers["Location"].split("?")[0]
    sid = int(url.rsplit("/", 1)[1])
    assert "passée" in _post(sec, "/ep/seances", "/ep/", date="2026-12-01", lieu="x").get_data(as_text=True)
    r = _post(sec, f"{url}/inscrire", url, demandes=str(susp))
    assert r.status_code == 302
    session_page = sec.get(url).get_data(as_text=True)
    assert f"Demande n° {susp}</a>" in session_page and "14:00" in session_page
    assert _post(sec, f"{url}/inscrire", url, demandes=str(other)).status_code == 404
    # a second open session may not take it as well (the page says so; the database refuses it)
    r2 = _post(sec, "/ep/seances", "/ep/", date="2027-01-27", heure="09:30", lieu="MDS de l'Arrageois")
    url2 = r2.headers["Location"].split("?")[0]
    r = _post(sec, f"{url2}/inscrire", url2, demandes=str(susp))
    assert r.status_code == 409 and f"séance n° {sid}" in r.get_data(as_text=True)

    # eight days before the deadline: in time; six days: due within 7 days
    clock.of(app).set(dt.datetime(2027, 1, 29, 9, tzinfo=dt.timezone.utc))
    page = sec.get("/ep/").get_data(as_text=True)
    assert "À rendre sous 7 jours" in page and _listed(page, reo) and not _listed(page, susp)
    watched = page[page.index('id="t-delais"'):page.index('id="t-attente"')]
    assert f'href="/ep/demandes/{susp}"' in watched and f'href="/ep/seances/{sid}"' in watched

    # the EP's avis: the printed field's max_length, never a system choice, then recorded
    limit = comment_limit(machine().step("ep"))
    too_long = _post(sec, f"{url}/demandes/{susp}/avis", url, choix="favorable",
                     commentaire="x" * (limit + 1))
    assert too_long.status_code == 400
    assert f"{limit} caractères au plus" in too_long.get_data(as_text=True)
    assert _post(sec, f"{url}/demandes/{susp}/avis", url, choix="repute_rendu").status_code == 403
    r = _post(sec, f"{url}/demandes/{susp}/avis", url, choix="defavorable",
              commentaire="Le contrat est respecté depuis décembre.")
    assert r.status_code == 302
    session_page = sec.get(r.headers["Location"]).get_data(as_text=True)
    assert "Défavorable" in session_page and "Le contrat est respecté depuis décembre." in session_page
    detail = api.get(f"/api/v1/requests/{susp}", headers=headers(people["keys"]["ref.arr@c.example"])).get_json()
    assert detail["etat"] == "decision"
    ep_avis = [a for a in detail["avis"] if a["etape"] == "ep"]
    assert [(a["choix"], a["source"]) for a in ep_avis] == [("defavorable", "web")]

    # the référent sees it on « Mes demandes » and got the e-mail
    ref = app.test_client()
    _login(ref, "ref.arr@c.example")
    mine = ref.get("/mes-demandes/").get_data(as_text=True)
    assert "Le contrat est respecté depuis décembre." in mine
    told = [m for m in _mails(app) if "ref.arr@c.example" in m["to"]
            and "équipe pluridisciplinaire" in m["subject"]]
    assert len(told) == 1 and "Défavorable" in told[0]["body"] and "Dupont" not in told[0]["body"]

    # the month passes for the réorientation: « réputé rendu » by the CLI, on to the decision
    out = runner.run("ep", "echeances", "--date", "2027-02-05", "--json")
    assert out.exit_code == 0, out.output
    import json
    assert json.loads(out.output)["reputes_rendus"] == [reo, other]    # every territory's
    assert runner.run("ep", "echeances", "--date", "2027-02-06", "--json").exit_code == 0
    detail = api.get(f"/api/v1/requests/{reo}", headers=headers(people["keys"]["ref.arr@c.example"])).get_json()
    assert detail["etat"] == "decision"
    deemed = [a for a in detail["avis"] if a["etape"] == "ep"]
    assert [(a["choix"], a["actor"], a["source"]) for a in deemed] == [("repute_rendu", "systeme", "systeme")]
    mine = ref.get(f"/mes-demandes/{reo}").get_data(as_text=True)
    assert "réputé rendu" in mine
    assert any("ref.arr@c.example" in m["to"] and "réputé rendu" in m["body"] for m in _mails(app))
    fiche = api.get(f"/api/v1/requests/{reo}", headers=headers(people["keys"]["ref.arr@c.example"]))
    assert fiche.status_code == 200

    # the session is held: closed, its agenda frozen
    r = _post(sec, f"{url}/cloture", url, statut="tenue")
    assert r.status_code == 302
    assert "Tenue" in sec.get(url).get_data(as_text=True)
    assert _post(sec, f"{url}/inscrire", url, demandes=str(susp)).status_code == 409


def test_the_periodic_job_deems_given_once_the_month_passed(ep_app):
    """The queue's periodic job (once a minute whatever the number of workers: the desk
    queue's key per period) on a worker's settings whose clock is past the month."""
    from forms_service import db
    from forms_service.circuit import ep_deadlines
    from forms_service.circuit.models import Demande
    from forms_service.desk import queue as desk_queue

    app, people = ep_app
    api = app.test_client()
    rid = to_ep(api, people, "arr1", "suspension")
    settings = app.extensions["forms_service.settings"]
    assert ep_deadlines._periodic in desk_queue.PERIODIC
    q = desk_queue.DeskQueue(settings.model_copy(update={"clock_now": dt.datetime(2027, 2, 4, 23, tzinfo=dt.timezone.utc)}))
    ep_deadlines._periodic(q)                      # the deadline day itself: still in time
    with app.app_context(), db.session() as s:
        assert s.get(Demande, rid).etat == "en_ep"
    q = desk_queue.DeskQueue(settings.model_copy(update={"clock_now": dt.datetime(2027, 2, 5, 0, 30, tzinfo=dt.timezone.utc)}))
    q._every_minute()                              # what the consumer runs
    q._every_minute()                              # same minute: not again
    with app.app_context(), db.session() as s:
        d = s.get(Demande, rid)
        assert d.etat == "decision"
        assert [(a.etape, a.choix) for a in d.avis if a.etape == "ep"] == [("ep", "repute_rendu")]
        assert d.data["ep"]["avis_motive"].startswith("Avis réputé rendu")
        assert d.data.get("avis_ep") is None       # the paper's boxes are favorable / défavorable only


def test_one_open_agenda_per_request_is_the_database_s_rule(make_app, db_url):
    """Whatever writes it: a second open passage of a request is refused, a closed session
    closes its passages (ON UPDATE CASCADE) and the request may be scheduled again."""
    from forms_service import db

    app = make_app(database_url=db_url, clock_now=START)
    people = seed_ep(app)
    rid = to_ep(app.test_client(), people, "arr1", "suspension")
    with app.app_context():
        engine = db.get_database().engine
    now = "2027-01-20 14:00:00+00"

    def session_row(c) -> int:
        return c.execute(sa.text(
            "INSERT INTO ep_session (territoire, date_seance, lieu, statut, ouverte, created_at, created_by)"
            " VALUES ('arrageois', :t, 'MDS', 'planifiee', :o, :t, 'test') RETURNING id"),
            {"t": now, "o": True}).scalar()

    def passage(c, sid, ouverte=True):
        c.execute(sa.text(
            "INSERT INTO ep_passage (session_id, session_ouverte, demande_id, position, added_at, added_by)"
            " VALUES (:s, :o, :d, 1, :t, 'test')"), {"s": sid, "o": ouverte, "d": rid, "t": now})

    with engine.begin() as c:
        first, second = session_row(c), session_row(c)
        passage(c, first)
    with pytest.raises(sa.exc.IntegrityError):
        with engine.begin() as c:
            passage(c, second)                     # a second open agenda
    with pytest.raises(sa.exc.IntegrityError):
        with engine.begin() as c:
            passage(c, second, ouverte=False)      # a passage that lies about its session
    with pytest.raises(sa.exc.IntegrityError):
        with engine.begin() as c:
            c.execute(sa.text("UPDATE ep_session SET statut = 'tenue' WHERE id = :s"), {"s": first})
    with engine.begin() as c:                      # held: its passages close with it
        c.execute(sa.text("UPDATE ep_session SET statut = 'tenue', ouverte = :f WHERE id = :s"),
                  {"s": first, "f": False})
        assert c.execute(sa.text("SELECT session_ouverte FROM ep_session JOIN ep_passage"
                                 " ON ep_passage.session_id = ep_session.id")).scalar() in (False, 0)
        passage(c, second)                         # and it may go onto another session


def test_avis_from_paper_and_deemed_given_go_to_their_passage(ep_app):
    """The EP's part filled on a fiche read again (the desk's path: ``add_paper_avis``) and
    « réputé rendu » reach the request's passage on the session's agenda, like a web avis."""
    import copy

    from forms_service import db
    from forms_service.accounts import authn
    from forms_service.accounts.models import User
    from forms_service.circuit import ep_deadlines, ep_service, service
    from forms_service.circuit.hooks import DESK
    from forms_service.circuit.models import Demande

    app, people = ep_app
    api = app.test_client()
    paper, late = to_ep(api, people, "arr1", "suspension"), to_ep(api, people, "arr2", "reorientation")
    with app.app_context(), db.session() as s:
        p = authn.principal_for_user(s.get(User, people["ids"]["ep.arr@c.example"]))
        sess = ep_service.create_session(s, p, territoire=None, lieu="MDS",
                                         date_seance=dt.datetime(2027, 1, 20, 14, tzinfo=dt.timezone.utc))
        ep_service.schedule(s, p, sess.id, [paper, late])
        d = s.get(Demande, paper)
        data = copy.deepcopy(d.data)
        data["avis_ep"] = "defavorable"
        data["ep"] = {"avis_motive": "Reprise du contrat en cours.", "date": "2027-01-20"}
        service.add_paper_avis(s, DESK, d, data)
        ids, _mails = ep_deadlines.deem_given_in(s, dt.date(2027, 2, 5))
        assert ids == [late]
        s.expire_all()
        row = access_session(s, p, sess.id)
        linked = {x.demande_id: x.avis_id for x in row.passages}
        by_request = {rid: s.get(Demande, rid).avis[-1] for rid in (paper, late)}
        assert linked == {rid: a.id for rid, a in by_request.items()}
        assert [(a.choix, a.source) for a in by_request.values()] == [("defavorable", "papier"),
                                                                    ("repute_rendu", "systeme")]


def access_session(s, p, session_id):
    from forms_service import access
    return access.get_ep_session(p, session_id, session=s)


def test_the_sessions_api_lists_shows_the_agenda_and_records_an_avis(ep_app):
    """``/api/v1/ep/sessions``: the sessions of one's territory only, a session's agenda
    with each request's deadline, the EP's avis recorded through the API (the secretariat
    only; 409 off the agenda), all in the OpenAPI document."""
    app, people = ep_app
    api = app.test_client()
    k = people["keys"]
    susp, reo = to_ep(api, people, "arr1", "suspension"), to_ep(api, people, "arr2", "reorientation")
    sec = app.test_client()
    _login(sec, "ep.arr@c.example")
    r = _post(sec, "/ep/seances", "/ep/", date="2027-01-20", heure="14:00", lieu="MDS de l'Arrageois")
    url = r.headers["Location"].split("?")[0]
    sid = int(url.rsplit("/", 1)[1])
    assert _post(sec, f"{url}/inscrire", url, demandes=str(susp)).status_code == 302
    ep_key, other_key = headers(k["ep.arr@c.example"]), headers(k["ep.art@c.example"])

    listed = api.get("/api/v1/ep/sessions", headers=ep_key)
    assert listed.status_code == 200, listed.get_json()
    (item,) = listed.get_json()["items"]
    assert (item["id"], item["territoire"], item["ouverte"], item["inscrites"], item["avis"]) == (
        sid, "arrageois", True, 1, 0)
    assert api.get("/api/v1/ep/sessions", headers=other_key).get_json()["items"] == []
    assert api.get(f"/api/v1/ep/sessions/{sid}", headers=other_key).status_code == 404

    detail = api.get(f"/api/v1/ep/sessions/{sid}", headers=ep_key).get_json()
    (line,) = detail["ordre_du_jour"]
    assert (line["demande_id"], line["etat"], line["renvoi"], line["echeance"], line["delai"],
            line["avis_ep"]) == (susp, "en_ep", "2027-01-04", "2027-02-04", "a_venir", None)

    avis_url = f"/api/v1/ep/sessions/{sid}/requests/{susp}/avis"
    body = {"choix": "favorable", "commentaire": "Suspension justifiée."}
    # the territory's correspondant sees the session but may not give the EP's avis; a
    # référent does not see it
    assert api.get(f"/api/v1/ep/sessions/{sid}", headers=headers(k["corr.arr@c.example"])).status_code == 200
    assert api.post(avis_url, json=body, headers=headers(k["corr.arr@c.example"])).status_code == 403
    assert api.post(avis_url, json=body, headers=headers(k["ref.arr@c.example"])).status_code == 404
    assert api.post(f"/api/v1/ep/sessions/{sid}/requests/{reo}/avis", json=body,
                    headers=ep_key).get_json()["errors"][0]["rule"] == "non_inscrite"
    r = api.post(avis_url, json=body, headers=ep_key)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["etat"] == "decision" and r.get_json()["avis"][-1]["source"] == "api"
    line = api.get(f"/api/v1/ep/sessions/{sid}", headers=ep_key).get_json()["ordre_du_jour"][0]
    assert (line["avis_ep"]["choix"], line["avis_ep"]["source"]) == ("favorable", "api")
    assert api.post(avis_url, json=body, headers=ep_key).status_code == 409     # given already

    doc = api.get("/api/v1/openapi.json").get_json()
    assert {"/api/v1/ep/sessions", "/api/v1/ep/sessions/{session_id}",
            "/api/v1/ep/sessions/{session_id}/requests/{request_id}/avis"} <= set(doc["paths"])
