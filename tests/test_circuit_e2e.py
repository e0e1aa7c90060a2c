"""The circuit's part 2 end to end (issue 13's done-when), continuing part 1's: fiches issued
by the service over real HTTP (the render API, real LibreOffice, fillable PDFs as a
référent's PDF reader returns them), read at the desk by a real ``forms-service worker``,
favoured by their correspondant on the web; then

- the suspension and the réorientation are on the EP's agenda with their deadline (one
  month from referral, CASF R262-71): the suspension is scheduled in a session and gets
  the EP's avis on the web; the service's clock (``FORMS_SERVICE_CLOCK_NOW``) passes the
  month for the réorientation, and the real ``forms-service ep echeances`` command records
  « réputé rendu »;
- the Président's decision: on the decideur's page for three, on paper for two (its part
  filled on the fiche, read back at the desk by the worker);
- the three actions CG go to their structure: one with an account (decided on paper: its
  inbox, an e-mail with the link), two without (one decided on the web, one on paper: the
  fiche printed for each, by the app or by the worker, and e-mailed at once with the PDF,
  received by a real SMTP server, aiosmtpd);
- the structures' returns: one on the web, the other read back from its page 3 sent back
  alone, ticked by hand and scanned, through the desk and the real worker (the page 1–2
  boxes it does not carry are not sent to review: it adds to its request at once);
- and at each step the référent sees it: « Mes demandes » and an e-mail.

One app served over HTTP (werkzeug, in a thread), one worker, one SMTP server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest
from markupsafe import escape

from tests.circuit_data import PASSWORD, SmtpServer, sample, seed
from tests.decision_data import ATELIER, MORE_PEOPLE
from tests.desk_queue import ROOT, start_worker, stop, worker_env
from tests.ep_data import EP_PEOPLE, START
from tests.served_thread import serving
from tests.test_circuit_desk import fill
from tests.test_circuit_scans import Http, csrf, read_batch

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.skipif(shutil.which("pdftk") is None, reason="pdftk is not installed")]

FORM = "fiche-liaison"
ELSEWHERE = "Association Mobilité Arras"
ELSEWHERE_EMAIL = "mobilite@asso.example"
ON_THE_WEB = "Garage solidaire d'Arras"
ON_THE_WEB_EMAIL = "garage@asso.example"
REF = "ref.arr@c.example"


def seed_everyone(app) -> dict:
    """Part 1's people, the EP's secretariats, the decideurs and the structures' accounts."""
    from forms_service import db
    from forms_service.accounts import keys, users

    people = seed(app)
    more = {e: (roles, terr, None) for e, (roles, terr) in EP_PEOPLE.items()} | MORE_PEOPLE
    with app.app_context(), db.session() as s:
        for email, (roles, territoire, organisme) in more.items():
            people["ids"][email] = users.save_user(s, email, roles, password=PASSWORD,
                                                   territoire=territoire, organisme=organisme).id
            _, people["keys"][email] = keys.create_key(s, email.split("@")[0], "requests",
                                                       user_email=email)
    return people


@pytest.fixture
def circuit(lo_pool, tmp_path):
    from forms_service.app import create_app

    with SmtpServer() as smtp:
        app = create_app({"var_dir": tmp_path / "var", "database_url": None, "departement_logo": None,
                          "TESTING": True, "PDF_POOL": lo_pool, "SMTP_HOST": "127.0.0.1",
                          "SMTP_PORT": smtp.port, "SMTP_STARTTLS": "false", "clock_now": START,
                          "REVIEW_SAMPLE_RATE": "0", "FORMS_SERVICE_SECURE_COOKIES": "false"})
        settings = app.extensions["forms_service.settings"]
        mail_env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false",
                    "MAIL_FROM": settings.mail_from, "FORMS_SERVICE_PUBLIC_URL": settings.public_url,
                    "REVIEW_SAMPLE_RATE": "0", "FORMS_SERVICE_CLOCK_NOW": START}
        worker = None
        try:
            with serving(app) as base:
                people = seed_everyone(app)
                worker = start_worker(settings, threads=2, log=tmp_path / "worker.log", **mail_env)
                yield {"app": app, "base": base, "people": people,
                       "smtp": smtp, "settings": settings, "mail_env": mail_env, "tmp": tmp_path}
        finally:
            if worker is not None:
                stop(worker)
            app.close()


def cli(c, *args) -> str:
    """The real ``forms-service`` command on the app's database (its own process)."""
    out = subprocess.run([sys.executable, "-m", "forms_service.cli", *args], cwd=str(ROOT),
                         env=worker_env(c["settings"], **c["mail_env"]), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


class Referent:
    """What the référent sees: « Mes demandes » and the e-mails the SMTP server received."""

    def __init__(self, c):
        self.web = Http(c["base"]).login(REF)
        self.smtp = c["smtp"]

    def told(self, rid: int, subject_end: str, *, timeout: float = 60) -> dict:
        subject = f"Fiche de liaison n° {rid} : {subject_end}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.smtp.to(REF) if m["subject"] == subject]
            if found:
                return found[-1]
            time.sleep(0.2)
        raise AssertionError(f"no e-mail « {subject} »: {[m['subject'] for m in self.smtp.to(REF)]}")

    def sees(self, rid: int, *texts: str) -> None:
        page = self.web.get(f"/mes-demandes/{rid}").text
        for text in texts:
            assert str(escape(text)) in page, (rid, text)


def test_from_the_correspondant_to_the_structures_return(circuit):
    c = circuit
    base, smtp, k, b = c["base"], c["smtp"], c["people"]["keys"], c["people"]["b"]
    admin = Http(base, k["admin@c.example"])
    ref = Referent(c)

    # ------------------------------------------------------------------ part 1: issued, read, favoured
    fiches = {"suspension": ("arr1", sample("suspension")),
              "reorientation": ("arr2", sample("reorientation")),
              "cg_compte": ("arr3", sample("actions-cg")),
              "cg_email": ("arr1", sample("actions-cg")),
              "cg_web": ("arr2", sample("actions-cg"))}
    issued, pdfs = {}, []
    for name, (ben, data) in fiches.items():
        r = Http(base, k[REF]).post(f"/api/v1/forms/{FORM}/render",
                                    params={"format": "pdf", "fillable": "true", "beneficiaire": b[ben]},
                                    json=data)
        assert r.status_code == 200, r.text[:500]
        issued[name] = r.headers["X-Document-Id"]
        pdfs.append((f"{name}.pdf", r.content))
    view = read_batch(Http(base, k["agent.arr@c.example"]), pdfs)
    assert view["summary"]["forms"] == 5, view["summary"]
    by_doc = {i["document_id"]: i for i in admin.get("/api/v1/requests").json()["items"]}
    rid = {name: by_doc[doc]["id"] for name, doc in issued.items()}
    assert {by_doc[d]["etat"] for d in issued.values()} == {"avis_correspondant"}

    corr = Http(base).login("corr.arr@c.example")
    for name in fiches:
        page = corr.get(f"/correspondant/demandes/{rid[name]}").text
        r = corr.post(f"/correspondant/demandes/{rid[name]}", data={
            "csrf_token": csrf(page), "choix": "favorable", "commentaire": "Dossier complet."})
        assert r.status_code == 302, r.text[:500]
    state = {n: admin.get(f"/api/v1/requests/{i}").json()["etat"] for n, i in rid.items()}
    assert state == {"suspension": "en_ep", "reorientation": "en_ep", "cg_compte": "decision",
                     "cg_email": "decision", "cg_web": "decision"}
    ref.told(rid["suspension"], "avis du correspondant")

    # ------------------------------------------------------------------ the EP's agenda, its deadline
    ep = Http(base).login("ep.arr@c.example")
    agenda = ep.get("/ep/").text
    waiting = agenda[agenda.index('id="t-attente"'):agenda.index('id="t-seances"')]
    for name in ("suspension", "reorientation"):
        assert f'href="/ep/demandes/{rid[name]}"' in waiting
    for name in ("cg_compte", "cg_email", "cg_web"):
        assert f'href="/ep/demandes/{rid[name]}"' not in waiting
    assert "04/02/2027" in waiting and "Dans les délais" in waiting   # a month after 04/01/2027
    r = ep.post("/ep/seances", data={"csrf_token": csrf(agenda), "date": "2027-01-20",
                                     "heure": "14:00", "lieu": "MDS de l'Arrageois"})
    assert r.status_code == 302, r.text[:500]
    session_url = r.headers["Location"].split("?")[0].replace(base, "")
    page = ep.get(session_url).text
    r = ep.post(f"{session_url}/inscrire", data={"csrf_token": csrf(page),
                                                  "demandes": str(rid["suspension"])})
    assert r.status_code == 302
    page = ep.get(session_url).text
    assert f"Demande n° {rid['suspension']}</a>" in page and "04/02/2027" in page
    ref.sees(rid["suspension"], "En équipe pluridisciplinaire")

    # the EP's avis on the suspension, given on the session's page
    r = ep.post(f"{session_url}/demandes/{rid['suspension']}/avis", data={
        "csrf_token": csrf(page), "choix": "favorable", "commentaire": "Suspension justifiée."})
    assert r.status_code == 302, r.text[:500]
    assert "Suspension justifiée." in ep.get(session_url).text
    ref.told(rid["suspension"], "avis de l'équipe pluridisciplinaire")
    ref.sees(rid["suspension"], "Suspension justifiée.")

    # the month passes for the réorientation: « réputé rendu » by the real command
    assert json.loads(cli(c, "ep", "echeances", "--date", "2027-02-04", "--json"))["reputes_rendus"] == []
    out = json.loads(cli(c, "ep", "echeances", "--date", "2027-02-05", "--json"))
    assert out["reputes_rendus"] == [rid["reorientation"]]
    deemed = admin.get(f"/api/v1/requests/{rid['reorientation']}").json()
    assert deemed["etat"] == "decision"
    assert [(a["choix"], a["source"]) for a in deemed["avis"] if a["etape"] == "ep"] == [
        ("repute_rendu", "systeme")]
    mail = ref.told(rid["reorientation"], "avis de l'équipe pluridisciplinaire")
    assert "réputé rendu" in mail["body"]
    ref.sees(rid["reorientation"], "réputé rendu")

    # ------------------------------------------------------------------ the Président's decision
    # on the decideur's page for three of them
    dec = Http(base).login("dec.arr@c.example")
    page = dec.get("/decision/").text
    for name in fiches:
        assert f"Fiche de liaison n° {rid[name]}<" in page

    def decide(name, **fields):
        r = dec.post(f"/decision/{rid[name]}", data={"csrf_token": csrf(dec.get("/decision/").text),
                                                     "choix": "favorable", **fields})
        assert r.status_code == 302, r.text[-2000:]
        return dec.get(r.headers["Location"].replace(base, "")).text

    decide("suspension", commentaire="Suspension décidée.")
    decide("reorientation", commentaire="Réorientation décidée.")
    # a structure without an account, entered on the page: its copy is e-mailed at once
    assert "La fiche a été envoyée par e-mail" in decide(
        "cg_web", avenant="non", **{"president.structure": ON_THE_WEB,
                                    "president.structure_email": ON_THE_WEB_EMAIL})
    # ... and on paper for two: the Président's part filled on the référent's fiche, read
    # back at the desk by the worker; the directory's atelier (it has an account: its inbox),
    # and a structure the directory does not list (no account: its copy e-mailed at once)
    on_paper = {"cg_compte": {"president.structure": ATELIER,
                              "president.observation": "Atelier validé."},
                "cg_email": {"president.structure": ELSEWHERE,
                             "president.structure_email": ELSEWHERE_EMAIL,
                             "president.structure_tel": "03 21 99 99 99",
                             "president.observation": "Accord pour la mobilité."}}
    papers = [(f"decision-{name}.pdf",
               fill(dict(pdfs)[f"{name}.pdf"], {"decision_president.favorable": "/Yes",
                                                "avenant.non": "/Yes", **values}, c["tmp"]))
              for name, values in on_paper.items()]
    read_batch(Http(base, k["agent.arr@c.example"]), papers)
    state = {n: admin.get(f"/api/v1/requests/{i}").json()["etat"] for n, i in rid.items()}
    assert state == {"suspension": "traitee", "reorientation": "traitee", "cg_compte": "structure",
                     "cg_email": "structure", "cg_web": "structure"}
    for name in on_paper:
        decided = admin.get(f"/api/v1/requests/{rid[name]}").json()
        assert (decided["avis"][-1]["etape"], decided["avis"][-1]["source"]) == ("president", "papier")
        assert decided["fiche"]["avenant"] == "non"
        assert decided["fiche"]["president"]["observation"] == on_paper[name]["president.observation"]
    assert admin.get("/api/v1/requests").json()["total"] == 5     # never a second request
    for name in fiches:
        ref.told(rid[name], "décision du président")
    ref.sees(rid["suspension"], "Décision du Président", "Suspension décidée.")
    ref.sees(rid["cg_email"], "Décision du Président", "Accord pour la mobilité.")
    # the atelier's account sees its request; another structure's does not
    assert Http(base, k["struct.arr@c.example"]).get(f"/api/v1/requests/{rid['cg_compte']}").status_code == 200
    assert Http(base, k["struct.art@c.example"]).get(f"/api/v1/requests/{rid['cg_compte']}").status_code == 404

    # ------------------------------------------------------------------ the structures are told
    inbox_mail = _wait_to(smtp, "struct.arr@c.example")[0]
    assert inbox_mail["subject"] == f"Fiche de liaison n° {rid['cg_compte']} : une action CG vous est confiée"
    assert f"/structure/demandes/{rid['cg_compte']}" in inbox_mail["body"]
    # the paper decision's copy: printed by the worker and e-mailed at once (no web decision after)
    (sent,) = _wait_to(smtp, ELSEWHERE_EMAIL)
    ((filename, pdf),) = sent["attachments"]
    assert filename.endswith(".pdf") and pdf[:5] == b"%PDF-"
    printed = _fields(pdf)
    assert printed["president.structure"] == ELSEWHERE
    assert printed["president.structure_tel"] == "03 21 99 99 99"
    assert printed["beneficiaire.nom"] == sample("actions-cg")["beneficiaire"]["nom"]
    assert printed["correspondant_avis.observation"] == ""    # not the structure's to see
    (sent,) = _wait_to(smtp, ON_THE_WEB_EMAIL)                 # the web decision's copy
    ((_, web_pdf),) = sent["attachments"]
    assert _fields(web_pdf)["president.structure"] == ON_THE_WEB

    # the structure with an account: its inbox, its return on the web
    struct = Http(base).login("struct.arr@c.example")
    inbox = struct.get("/structure/").text
    assert f"n° {rid['cg_compte']}<" in inbox and f"n° {rid['cg_email']}<" not in inbox
    assert struct.get(f"/structure/demandes/{rid['cg_email']}").status_code == 404
    page = struct.get(f"/structure/demandes/{rid['cg_compte']}").text
    r = struct.post(f"/structure/demandes/{rid['cg_compte']}", data={
        "csrf_token": csrf(page), "choix": "commence", "structure.intervenant": "Dominique Exemple",
        "synthese": "Entrée à l'atelier le 8 février."})
    assert r.status_code == 302, r.text[:500]
    done = admin.get(f"/api/v1/requests/{rid['cg_compte']}").json()
    assert done["etat"] == "traitee" and done["fiche"]["retour_structure"] == ["commence"]
    ref.told(rid["cg_compte"], "retour de la structure")
    ref.sees(rid["cg_compte"], "Retour de la structure", "Entrée à l'atelier le 8 février.")

    # the structure without one: its page 3 ticked by hand, scanned, read at the desk
    document_id = _copy_document(c["app"], rid["cg_email"])
    png = _scanned_page3(c["app"], pdf, document_id, {"retour_structure": ["absente"]})
    view = read_batch(Http(base, k["agent.arr@c.example"]), [("retour.png", png)])
    (record_id,) = view["records"]
    record = admin.get(f"/api/v1/records/{record_id}").json()
    # the page 1–2 boxes it does not carry are the request's, not to review
    fields = record["record"]["fields"]
    assert {"objet", "actions_cg"} <= {p for p, f in fields.items() if f.get("not_carried")}
    flagged = {p: f.get("reason") for p, f in fields.items() if f.get("needs_review")}
    assert record["review"] == "none" and not flagged, (record["review"], flagged)
    back = admin.get(f"/api/v1/requests/{rid['cg_email']}").json()
    assert back["etat"] == "traitee", back["avis"][-1]
    assert (back["avis"][-1]["etape"], back["avis"][-1]["choix"], back["avis"][-1]["source"]) == (
        "structure", "absente", "papier")
    assert admin.get("/api/v1/requests").json()["total"] == 5     # never a second request
    ref.told(rid["cg_email"], "retour de la structure")
    ref.sees(rid["cg_email"], "Retour de la structure", "lu sur la fiche papier")

    listing = ref.web.get("/mes-demandes/").text
    for name in fiches:
        assert f"/mes-demandes/{rid[name]}" in listing


def _wait_to(smtp, email: str, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while not smtp.to(email) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert smtp.to(email), f"nothing for {email}"
    return smtp.to(email)


def _fields(pdf: bytes) -> dict[str, str]:
    import io

    from pypdf import PdfReader

    return {name: str(f.get("/V") or "") for name, f in PdfReader(io.BytesIO(pdf)).get_fields().items()}


def _copy_document(app, demande_id: int) -> str:
    """The document id of the copy printed for the structure (what its page 3 carries)."""
    from forms_service import db
    from forms_service.circuit.structure_models import StructureEnvoi

    with app.app_context(), db.session() as s:
        envoi = s.get(StructureEnvoi, demande_id)
        assert (envoi.mode, envoi.statut) == ("email", "envoye")
        return envoi.document_id


def _scanned_page3(app, pdf: bytes, document_id: str, data: dict) -> bytes:
    """Page 3 of ``pdf`` printed, its boxes ticked by hand as ``data`` says, scanned (the
    scan bench's marks and damage: ``tests.test_parse_roundtrip.scan_pages``)."""
    import io

    import numpy as np
    from PIL import Image

    from forms_service.render.service import get_service
    from tests.test_parse_roundtrip import scan_pages

    with app.app_context():
        layout = get_service(app).blank_layout(FORM)

    class Printed:
        form_id = FORM

    doc = Printed()
    doc.content, doc.layout, doc.document_id = pdf, layout, document_id
    page = scan_pages(doc, data, 1313, tick=True)[2]
    out = io.BytesIO()
    Image.fromarray(np.asarray(page)).save(out, format="PNG", dpi=(200, 200))
    return out.getvalue()
