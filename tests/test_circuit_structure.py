"""Actions CG on paper (issue 13, parts 2 and 3), end to end with real LibreOffice, the
desk's real ``forms-service worker`` and SQLite:

- the Président's part filled on the référent's printed fiche, read back at the desk: its
  decision adds to the request, which reaches the structure's inbox (it has an account);
- a decision on the web for a structure without an account: the fiche, printed by the
  render service with only what a structure may see, is e-mailed to it (.eml outbox, PDF
  attached) at once (its page 3 scanned back: ``tests/test_circuit_e2e.py``, which also
  has a paper decision for a structure without an account, e-mailed by the worker);
- a copy that could not go (no address) listed on the decideur's page of copies and
  resent (audited); a copy left waiting, sent by the queue's periodic job.

``_scanned_page`` (a page printed, ticked by hand and scanned) serves the e2e test."""

from __future__ import annotations

import io
import shutil
from email import message_from_bytes, policy
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape

from tests.circuit_data import headers, sample
from tests.conftest import csrf_token
from forms_service.circuit.structure_models import StructureEnvoi
from tests.decision_data import ATELIER, login, request_view, seed_all, to_decision
from tests.desk_queue import start_worker, stop
from tests.test_circuit_desk import fill, read_batch, render_fillable

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.skipif(shutil.which("pdftk") is None, reason="pdftk is not installed")]

ELSEWHERE = "Association Mobilité Arras"


def _by_document(client, people, document_id) -> dict:
    items = client.get("/api/v1/requests", headers=headers(people["keys"]["admin@c.example"])).get_json()["items"]
    return next(i for i in items if i["document_id"] == document_id)


def _scanned_page(app, pdf: bytes, document_id: str, data: dict, number: int, seed: int) -> bytes:
    """Page ``number`` of ``pdf`` printed, its boxes ticked by hand as ``data`` says, scanned."""
    from PIL import Image

    from forms_service.render.service import get_service
    from tests.test_parse_roundtrip import scan_pages

    with app.app_context():
        layout = get_service(app).blank_layout("fiche-liaison")

    class Printed:
        form_id = "fiche-liaison"

    doc = Printed()
    doc.content, doc.layout, doc.document_id = pdf, layout, document_id
    page = scan_pages(doc, data, seed, tick=True)[number - 1]
    out = io.BytesIO()
    Image.fromarray(np.asarray(page)).save(out, format="PNG", dpi=(200, 200))
    return out.getvalue()


def test_paper_decision_and_a_scanned_structure_return_add_to_their_requests(make_app, lo_pool, tmp_path):
    app = make_app(PDF_POOL=lo_pool)
    people = seed_all(app)
    client = app.test_client()
    k, b = people["keys"], people["b"]
    doc_a, pdf_a = render_fillable(client, k["ref.arr@c.example"], b["arr2"], sample("actions-cg"))
    worker = start_worker(app.extensions["forms_service.settings"], threads=1,
                          log=tmp_path / "worker.log")
    try:
        # A: the référent's fiche read at the desk, favoured by the correspondant
        read_batch(client, k["agent.arr@c.example"], [("fiche.pdf", pdf_a)])
        rid_a = _by_document(client, people, doc_a)["id"]
        r = client.post(f"/api/v1/requests/{rid_a}/avis", headers=headers(k["corr.arr@c.example"]),
                        json={"etape": "correspondant", "choix": "favorable", "commentaire": ""})
        assert r.get_json()["etat"] == "decision"
        # ... then the Président's part filled on the paper, read back: adds the decision
        back = fill(pdf_a, {"decision_president.favorable": "/Yes", "avenant.non": "/Yes",
                            "president.structure": ATELIER,
                            "president.observation": "Accord pour l'atelier."}, tmp_path)
        read_batch(client, k["agent.arr@c.example"], [("decision.pdf", back)])
        view = request_view(client, people, rid_a)
        assert view["etat"] == "structure"
        assert [(a["etape"], a["choix"], a["source"]) for a in view["avis"]][-1] == (
            "president", "favorable", "papier")
        assert view["fiche"]["avenant"] == "non"
        assert view["fiche"]["president"]["observation"] == "Accord pour l'atelier."
        assert _by_document(client, people, doc_a)["id"] == rid_a      # never a second request
        assert client.get(f"/api/v1/requests/{rid_a}",
                          headers=headers(k["struct.arr@c.example"])).status_code == 200
        assert client.get(f"/api/v1/requests/{rid_a}",
                          headers=headers(k["struct.art@c.example"])).status_code == 404

        # B: decided on the web for a structure the directory does not list: e-mailed the fiche
        rid_b = to_decision(client, people, "arr3", "actions-cg")
        dec = login(app.test_client(), "dec.arr@c.example")
        token = csrf_token(dec.get("/decision/").get_data(as_text=True))
        r = dec.post(f"/decision/{rid_b}", data={
            "csrf_token": token, "choix": "favorable", "avenant": "non",
            "president.structure": ELSEWHERE, "president.structure_email": "mobilite@asso.example",
            "president.structure_tel": "03 21 99 99 99"})
        assert r.status_code == 302, r.get_data(as_text=True)[-2000:]
        assert "La fiche a été envoyée par e-mail" in dec.get(r.headers["Location"]).get_data(as_text=True)
        outbox = Path(app.extensions["forms_service.settings"].var_dir) / "outbox"
        mails = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(outbox.glob("*.eml"))]
        sent = [m for m in mails if "mobilite@asso.example" in str(m["To"])]
        assert len(sent) == 1
        pdf_b = next(part.get_content() for part in sent[0].iter_attachments())
        assert pdf_b[:5] == b"%PDF-"
        from pypdf import PdfReader
        printed = {name: str(f.get("/V") or "") for name, f in PdfReader(io.BytesIO(pdf_b)).get_fields().items()}
        assert printed["president.structure"] == ELSEWHERE
        assert printed["president.structure_tel"] == "03 21 99 99 99"
        assert printed["beneficiaire.nom"] == sample("actions-cg")["beneficiaire"]["nom"]
        # the correspondant's part is not the structure's: printed empty
        assert printed["correspondant_avis.observation"] == ""
        from forms_service import db
        with app.app_context(), db.session() as s:
            envoi = s.get(StructureEnvoi, rid_b)
            assert (envoi.mode, envoi.statut, envoi.organisme) == ("email", "envoye", None)
            assert envoi.document_id
        # its page 3 scanned back to the desk: tests/test_circuit_e2e.py
    finally:
        stop(worker)


def test_a_copy_that_could_not_go_is_listed_and_resent(make_app, lo_pool):
    """A decision read from paper for a structure without an account and without an
    address: nothing can go (``echec``, « Aucune adresse »). The decideur's page of copies
    lists it (not to another territory's, nor to a structure); « Renvoyer » with the
    address prints it with the render service and e-mails it at once, audited; then the
    page no longer lists it, and sending it again is refused."""
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


def test_the_periodic_job_sends_what_waits(make_app, lo_pool):
    """A copy left ``a_envoyer`` (its decision's job never ran: the queue was down) is
    printed and sent by the queue's periodic job, once whatever the number of workers."""
    from forms_service import db
    from forms_service.circuit import structure
    from forms_service.desk import queue as desk_queue

    app = make_app(PDF_POOL=lo_pool)
    people = seed_all(app)
    rid = to_decision(app.test_client(), people, "arr3", "actions-cg")
    dec = login(app.test_client(), "dec.arr@c.example")
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
