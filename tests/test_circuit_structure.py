"""Actions CG on paper (issue 13, parts 2 and 3), end to end with real LibreOffice, the
desk's real ``forms-service worker`` and SQLite:

- the Président's part filled on the référent's printed fiche, read back at the desk: its
  decision adds to the request, which reaches the structure's inbox (it has an account);
- a decision on the web for a structure without an account: the fiche, printed by the
  render service with only what a structure may see, is e-mailed to it (.eml outbox, PDF
  attached); its page 3, ticked by hand and scanned (the scan bench's marks and damage),
  comes back at the desk and adds the structure's return to the request."""

from __future__ import annotations

import io
import shutil
from email import message_from_bytes, policy
from pathlib import Path

import numpy as np
import pytest

from tests.circuit_data import headers, sample
from tests.conftest import csrf_token
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


def _review(app, record_id: int) -> list[str]:
    """The SLAI agent settles the record's review on the desk's page (each point confirmed)."""
    import re

    agent = login(app.test_client(), "agent.arr@c.example")
    points = []
    for _ in range(40):
        page = agent.get(f"/slai/verification/{record_id}").get_data(as_text=True)
        found = re.search(r'name="point" value="([^"]+)"', page)
        if found is None:
            break
        points.append(found.group(1))
        r = agent.post(f"/slai/verification/{record_id}", data={
            "csrf_token": csrf_token(page), "point": found.group(1), "action": "confirmer"})
        assert r.status_code == 303, r.get_data(as_text=True)[:500]
    return points


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
        from forms_service.circuit.structure_models import StructureEnvoi
        with app.app_context(), db.session() as s:
            envoi = s.get(StructureEnvoi, rid_b)
            assert (envoi.mode, envoi.statut, envoi.organisme) == ("email", "envoye", None)
            doc_b = envoi.document_id

        # its page 3, the return ticked by hand and scanned, comes back to the desk
        png = _scanned_page(app, pdf_b, doc_b, {"retour_structure": ["commence"]}, 3, seed=1303)
        read_batch(client, k["agent.arr@c.example"], [("retour-structure.png", png)])
        # one page of three, hand-written text: it waits at the desk's review, then routes
        assert request_view(client, people, rid_b)["etat"] == "structure"
        recs = client.get("/api/v1/records", headers=headers(k["admin@c.example"])).get_json()["items"]
        scanned = next(r for r in recs if r["document_id"] == doc_b)
        assert scanned["review"] == "pending"
        points = _review(app, scanned["id"])
        assert points, "a record waiting for review has points to settle"
        print("review points:", points)
        view = request_view(client, people, rid_b)
        assert view["etat"] == "traitee", view["avis"][-1]
        last = view["avis"][-1]
        assert (last["etape"], last["choix"], last["source"]) == ("structure", "commence", "papier")
        assert view["fiche"]["retour_structure"] == ["commence"]
        mine = login(app.test_client(), "ref.arr@c.example").get(f"/mes-demandes/{rid_b}").get_data(as_text=True)
        assert "Retour de la structure" in mine and "lu sur la fiche papier" in mine
    finally:
        stop(worker)
