"""The structures' printed copies (issue 13), with real LibreOffice and SQLite:

- a copy that could not go (a decision read from paper for a structure without an account
  nor an address) is listed on the page of copies ``/decision/envois`` and resent with an
  address (printed by the render service, e-mailed, audited);
- a copy left waiting is sent by the queue's periodic job, once.

The structures on paper are in the end to end (``tests/test_circuit_e2e.py``): a decision
read from paper for a structure with an account (its inbox) and for one without (its copy
printed by the worker and e-mailed at once), a web decision for one without (e-mailed at
once), and a page 3 scanned back alone."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import pytest
from markupsafe import escape

from forms_service.circuit.structure_models import StructureEnvoi
from tests.conftest import csrf_token
from tests.decision_data import login, seed_all, to_decision

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ELSEWHERE = "Association Mobilité Arras"


def test_a_copy_that_could_not_go_is_resent_and_one_left_waiting_is_sent(make_app, lo_pool):
    """A decision read from paper for a structure without an account and without an
    address: nothing can go (``echec``, « Aucune adresse »). The decideur's page of copies
    lists it (not to another territory's, nor to a structure); « Renvoyer » with the
    address prints it with the render service and e-mails it at once, audited; then the
    page no longer lists it, and sending it again is refused. Then a copy left waiting
    goes with the queue's periodic job (one app for both: one set-up)."""
    import copy

    from forms_service import db
    from forms_service.db.models import AuditEvent
    from forms_service.circuit import service
    from forms_service.circuit.hooks import DESK
    from forms_service.circuit.models import Demande

    app = make_app(PDF_POOL=lo_pool)
    people = seed_all(app)
    client = app.test_client()
    rid = to_decision(client, people, "arr3", "actions-cg")
    with app.app_context(), db.session() as s:      # the desk's path for a fiche read again
        d = s.get(Demande, rid)
        data = copy.deepcopy(d.data)
        data.update(decision_president="favorable", avenant="non")
        data["president"] = {"structure": ELSEWHERE, "observation": "Accord."}
        service.add_paper_avis(s, DESK, d, data)
    with app.app_context(), db.session() as s:
        envoi = s.get(StructureEnvoi, rid)
        assert (envoi.mode, envoi.statut, envoi.email) == ("aucun", "echec", None)

    assert "Aucune fiche" in login(app.test_client(), "dec.art@c.example").get(
        "/decision/envois").get_data(as_text=True)
    assert login(app.test_client(), "struct.arr@c.example").get("/decision/envois").status_code == 403
    dec = login(app.test_client(), "dec.arr@c.example")
    page = dec.get("/decision/envois").get_data(as_text=True)
    assert f"n° {rid}<" in page and "Aucune adresse" in page and escape(ELSEWHERE) in page
    r = dec.post(f"/decision/envois/{rid}", data={"csrf_token": csrf_token(page), "email": "x"})
    assert r.status_code == 400 and "Indiquez l&#39;adresse e-mail" in r.get_data(as_text=True)
    r = dec.post(f"/decision/envois/{rid}", data={"csrf_token": csrf_token(page),
                                                  "email": "mobilite@asso.example"})
    assert r.status_code == 302, r.get_data(as_text=True)[-1500:]
    after = dec.get(r.headers["Location"]).get_data(as_text=True)
    assert f"La fiche n° {rid} a été renvoyée" in after and f"n° {rid}<" not in after

    outbox = Path(app.extensions["forms_service.settings"].var_dir) / "outbox"
    mails = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(outbox.glob("*.eml"))]
    (sent,) = [m for m in mails if "mobilite@asso.example" in str(m["To"])]
    (pdf,) = [part.get_content() for part in sent.iter_attachments()]
    assert pdf[:5] == b"%PDF-"
    with app.app_context(), db.session() as s:
        envoi = s.get(StructureEnvoi, rid)
        assert (envoi.mode, envoi.statut, envoi.email) == ("email", "envoye", "mobilite@asso.example")
        assert envoi.document_id
        audited = [e.action for e in s.query(AuditEvent).filter_by(object_type="demande", object_id=str(rid))]
        assert "demande.structure_renvoyee" in audited
    r = dec.post(f"/decision/envois/{rid}", data={"csrf_token": csrf_token(page),
                                                  "email": "mobilite@asso.example"})
    assert r.status_code == 409
    _the_periodic_job_sends_what_waits(app, people, dec)


def _the_periodic_job_sends_what_waits(app, people, dec):
    """A copy left ``a_envoyer`` (its decision's job never ran: the queue was down) is
    printed and sent by the queue's periodic job, once whatever the number of workers."""
    from forms_service import db
    from forms_service.circuit import structure
    from forms_service.desk import queue as desk_queue

    from forms_service.db.models import utcnow

    rid = to_decision(app.test_client(), people, "arr2", "actions-cg")
    with app.app_context(), db.session() as s:
        s.add(StructureEnvoi(demande_id=rid, mode="email", statut="a_envoyer", email="m@asso.example"))
    assert f"n° {rid}<" in dec.get("/decision/envois").get_data(as_text=True)
    assert structure._periodic in desk_queue.PERIODIC
    q = desk_queue.DeskQueue(app.extensions["forms_service.settings"])
    q._every_minute()
    q._every_minute()                 # the same minute: not again
    with app.app_context(), db.session() as s:
        assert s.get(StructureEnvoi, rid).statut == "envoye"
    outbox = Path(app.extensions["forms_service.settings"].var_dir) / "outbox"
    assert len([p for p in outbox.glob("*.eml") if b"m@asso.example" in p.read_bytes()]) == 1
    # alone: a copy taken for sending by a process killed mid-print (claimed, no document,
    # no e-mail) is taken again by the next period's job once the claim is stale
    died = to_decision(app.test_client(), people, "arr1", "actions-cg")
    with app.app_context(), db.session() as s:
        s.add(StructureEnvoi(demande_id=died, mode="email", statut="envoye", email="mort@asso.example",
                             sent_at=utcnow() - structure.STALE_CLAIM - structure.timedelta(minutes=1)))
    structure._periodic(q)
    with app.app_context(), db.session() as s:
        assert s.get(StructureEnvoi, died).statut == "envoye" and s.get(StructureEnvoi, died).document_id
    assert len([p for p in outbox.glob("*.eml") if b"mort@asso.example" in p.read_bytes()]) == 1
    structure._periodic(q)            # sent: not again
    assert len([p for p in outbox.glob("*.eml") if b"mort@asso.example" in p.read_bytes()]) == 1
    # alone: a process killed right after the copy's transaction (its document recorded, its
    # e-mail in the outbox, never handed to the queue) prints nothing again: the outbox's
    # sweep sends that e-mail, once, with the document the copy recorded
    from forms_service.circuit import mailing, notify

    settings = app.extensions["forms_service.settings"]
    after = to_decision(app.test_client(), people, "arr2", "actions-cg")
    with app.app_context(), db.session() as s:
        s.add(StructureEnvoi(demande_id=after, mode="email", statut="envoye", email="apres@asso.example",
                             document_id="D-APRES-1", sent_at=utcnow() - structure.STALE_CLAIM * 2))
        mailing.stage(s, None, [notify.Mail(       # None: what a killed process hands over
            to=("apres@asso.example",), subject="s", body="b", about=f"demande:{after}",
            kind="structure_fiche", attachments=(notify.Attachment("D-APRES-1.pdf", "application/pdf",
                                                                   b"%PDF-1.7"),))])
    structure._periodic(q)            # its document is recorded: not printed again
    assert not [p for p in outbox.glob("*.eml") if b"apres@asso.example" in p.read_bytes()]
    assert mailing.sweep(settings, now=utcnow() + mailing.GRACE * 2)
    assert mailing.sweep(settings, now=utcnow() + mailing.GRACE * 2) == []
    (sent,) = [p for p in outbox.glob("*.eml") if b"apres@asso.example" in p.read_bytes()]
    assert b"D-APRES-1.pdf" in sent.read_bytes()
    with app.app_context(), db.session() as s:
        assert s.get(StructureEnvoi, after).document_id == "D-APRES-1"
