"""The circuit from the SLAI desk (issue 12): a batch of filled fiches de liaison (fillable
PDFs rendered by the service with real LibreOffice, for beneficiaries of two territories)
received through ``POST /api/v1/batches`` and read by a real ``forms-service worker`` (which
also sends the e-mails from the task queue); each stored record
becomes a request in the right correspondant's inbox only, the invalid one goes back to its
référent, the e-mails reach a real SMTP server, the correspondant's avis reaches the
référent's « Mes demandes »; the same fiche coming back with the correspondant's part filled
adds its avis to its request.

Not scans: the fiches are filled AcroForm PDFs (what a référent's PDF reader returns); the
desk reads scans through the same hook (``on_record_stored``)."""

from __future__ import annotations

import io
import shutil
import subprocess
import time

import pytest

from tests.circuit_data import PASSWORD, SmtpServer, five_fiches, headers, mail_worker, seed
from tests.desk_queue import stop
from tests.conftest import csrf_token

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.skipif(shutil.which("pdftk") is None, reason="pdftk is not installed")]


def render_fillable(client, key, beneficiary, data) -> tuple[str, bytes]:
    r = client.post(f"/api/v1/forms/fiche-liaison/render?format=pdf&fillable=true&beneficiaire={beneficiary}",
                    json=data, headers=headers(key))
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    return r.headers["X-Document-Id"], r.data


def fill(pdf: bytes, values: dict, tmp) -> bytes:
    from tests.test_parse_roundtrip import xfdf

    src, data, out = tmp / "in.pdf", tmp / "data.xfdf", tmp / "out.pdf"
    src.write_bytes(pdf)
    data.write_text(xfdf(values), encoding="utf-8")
    subprocess.run(["pdftk", str(src), "fill_form", str(data), "output", str(out)],
                   check=True, capture_output=True, timeout=120)
    return out.read_bytes()


def read_batch(client, key, files, timeout: float = 240) -> dict:
    """POST the files to the desk; the desk's worker (a real ``forms-service worker``) reads them."""
    r = client.post("/api/v1/batches", headers=headers(key), content_type="multipart/form-data",
                    data={"files": [(io.BytesIO(b), name) for name, b in files]})
    assert r.status_code == 202, r.get_data(as_text=True)
    batch_id = r.get_json()["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = client.get(f"/api/v1/batches/{batch_id}", headers=headers(key)).get_json()
        if view["status"] == "done":
            return view
        time.sleep(0.3)
    raise AssertionError(f"batch not read: {view['progress']}")


def test_fiches_from_the_desk_reach_their_correspondant_and_come_back(make_app, lo_pool, tmp_path):
    with SmtpServer() as smtp:
        app = make_app(PDF_POOL=lo_pool, SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port)
        client = app.test_client()
        people = seed(app)
        k, b = people["keys"], people["b"]
        fiches = five_fiches()
        docs = {name: render_fillable(client, k[ref], b[ben], data)
                for name, (ref, ben, data) in fiches.items()}
        t0 = time.monotonic()
        worker = mail_worker(app, smtp, tmp_path)
        try:
            _circuit(app, client, people, docs, smtp, tmp_path)
        finally:
            stop(worker)
        print(f"desk part: {time.monotonic() - t0:.1f} s")


def _circuit(app, client, people, docs, smtp, tmp_path):
    """What the desk test checks, while the worker runs."""
    k = people["keys"]
    read_batch(client, k["agent.arr@c.example"],
               [(f"{name}.pdf", pdf) for name, (_, pdf) in docs.items()])

    listed = client.get("/api/v1/requests", headers=headers(k["admin@c.example"])).get_json()
    by_doc = {i["document_id"]: i for i in listed["items"]}
    assert listed["total"] == 5, listed
    req = {name: by_doc[doc_id] for name, (doc_id, _) in docs.items()}
    assert req["suspension"]["types"] == ["suspension"]
    assert req["actions_cg"]["types"] == ["actions_cg"]
    assert req["demande_appui"]["types"] == ["demande_appui"]

    def inbox(email):
        r = client.get("/api/v1/requests", query_string={"etat": "avis_correspondant"},
                       headers=headers(k[email]))
        return {i["id"] for i in r.get_json()["items"]}

    assert inbox("corr.arr@c.example") == {req["suspension"]["id"], req["actions_cg"]["id"]}
    assert inbox("corr.art@c.example") == {req["reorientation"]["id"], req["demande_appui"]["id"]}
    bad = req["invalid"]
    assert bad["etat"] == "a_corriger"
    assert "actions_cg_aucune_action" in {p["rule"] for p in bad["problems"]}
    mine = client.get("/api/v1/requests", query_string={"etat": "a_corriger"},
                      headers=headers(k["ref.arr@c.example"])).get_json()
    assert [i["id"] for i in mine["items"]] == [bad["id"]]

    # the e-mails: each correspondant their territory's two, the référent the invalid one
    smtp.wait(5)
    assert len(smtp.to("corr.arr@c.example")) == 2
    assert len(smtp.to("corr.art@c.example")) == 2
    assert [m["subject"] for m in smtp.to("ref.arr@c.example")] == [
        f"Fiche de liaison n° {bad['id']} à corriger"]

    # the correspondant's avis on the web, then on the référent's « Mes demandes »
    corr = app.test_client()
    token = csrf_token(corr.get("/connexion").get_data(as_text=True))
    corr.post("/connexion", data={"email": "corr.arr@c.example", "mot_de_passe": PASSWORD,
                                  "csrf_token": token})
    rid = req["suspension"]["id"]
    page = corr.get(f"/correspondant/demandes/{rid}").get_data(as_text=True)
    assert "Page 1" in page     # the pages of the paper it came from
    assert corr.get(f"/correspondant/demandes/{rid}/pages/0.png").mimetype == "image/png"
    r = corr.post(f"/correspondant/demandes/{rid}", data={
        "csrf_token": csrf_token(page), "choix": "favorable", "commentaire": "Dossier complet."})
    assert r.status_code == 302
    ref = app.test_client()
    token = csrf_token(ref.get("/connexion").get_data(as_text=True))
    ref.post("/connexion", data={"email": "ref.arr@c.example", "mot_de_passe": PASSWORD,
                                 "csrf_token": token})
    assert "Dossier complet." in ref.get("/mes-demandes/").get_data(as_text=True)
    smtp.wait(6)
    assert any("avis du correspondant" in m["subject"] for m in smtp.to("ref.arr@c.example"))

    # the actions CG fiche comes back on paper with the correspondant's part filled
    cg_doc, cg_pdf = docs["actions_cg"]
    back = fill(cg_pdf, {"correspondant_avis.observation": "Avis favorable, voir la structure."},
                tmp_path)
    read_batch(client, k["agent.arr@c.example"], [("retour.pdf", back)])
    after = client.get("/api/v1/requests", headers=headers(k["admin@c.example"])).get_json()
    assert after["total"] == 5      # never a second request
    again = client.get(f"/api/v1/requests/{req['actions_cg']['id']}",
                       headers=headers(k["corr.arr@c.example"])).get_json()
    assert again["etat"] == "decision"
    assert (again["avis"][-1]["etape"], again["avis"][-1]["choix"],
            again["avis"][-1]["source"]) == ("correspondant", "favorable", "papier")
    assert again["fiche"]["correspondant_avis"]["observation"] == "Avis favorable, voir la structure."
