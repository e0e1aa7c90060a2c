"""The circuit from SCANNED fiches de liaison (issue 12's done-when): fiches issued by the
service for beneficiaries of two territories (a suspension, a réorientation, an actions CG
request, a demande d'appui, an invalid one), printed to page images by the scan bench
generator (``benchmarks/scanbench``: it ticks the boxes with a pen, signs, writes the
correspondant's avis by hand, and damages the pages as a printer, a copier and a scanner
do), scanned as ONE batch sent over real HTTP to the desk, read by a real
``forms-service worker``; each fiche is found in the right correspondant's inbox and
nowhere else, the invalid one back with its référent, the e-mails in a real SMTP server
(aiosmtpd), the correspondant's avis on the référent's « Mes demandes »; then the same
actions CG fiche scanned again with the correspondant's part written by hand: the desk's
agent types the handwriting in on the review page, and the avis adds to its request, never a
second one.

One app served over HTTP (werkzeug, in a thread) and one worker for the module; the page
images are made once."""

from __future__ import annotations

import copy
import re
import time

import pytest
import requests

from tests.circuit_data import PASSWORD, SmtpServer, five_fiches, seed
from tests.desk_queue import start_worker, stop
from tests.served_thread import serving

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SEED = 20261201
FORM = "fiche-liaison"
AVIS_TEXT = "Avis favorable, voir la structure."


class Http:
    """A real HTTP client of the served app: API keys, or a logged-in session (CSRF)."""

    def __init__(self, base: str, key: str | None = None):
        self.base = base
        self.s = requests.Session()
        if key:
            self.s.headers["X-API-Key"] = key

    def get(self, path, **kw):
        return self.s.get(self.base + path, timeout=120, **kw)

    def post(self, path, **kw):
        return self.s.post(self.base + path, timeout=300, allow_redirects=False, **kw)

    def login(self, email: str) -> "Http":
        token = csrf(self.get("/connexion").text)
        r = self.post("/connexion", data={"email": email, "mot_de_passe": PASSWORD, "csrf_token": token})
        assert r.status_code == 302, r.text[:300]
        return self


def csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token"
    return m.group(1)


# ----------------------------------------------------------------------------- the paper

def plan(fd, data: dict, k: int, *, mode: str, document_id: str = "A_ISSUER"):
    """The generator's plan of one fiche: ``data`` as the référent means it, boxes ticked by
    hand on a form printed with its text (fill ``ticked``), reserved parts by hand."""
    import numpy as np

    from benchmarks.scanbench.generate import plan_document

    return plan_document(np.random.default_rng([SEED, k]), fd, batch=0, index=k, mode=mode,
                         person={}, samples=[], ulid_ms=0, data=data, document_id=document_id,
                         fill="ticked", ambiguities=False)


def rendered(fd, doc, pdf: bytes, version: str, settings, pool):
    """The issued PDF as the generator's ``Rendered`` (its layout map, its blank render)."""
    from benchmarks.scanbench.generate import Rendered, blank_pdf
    from forms_service.render.layout import layout_for

    layout = layout_for(fd, settings=settings, pool=pool, data_dump=doc.render_py)
    assert layout["template_version"] in (None, version)
    return Rendered(pdf, layout, version, len(layout["pages"]),
                    blank_pdf(fd, settings, pool, version, doc.render_py))


def scan(out, index: int, docs, renders, settings, pool, *, fmt: str, mode: str, dpi: int) -> bytes:
    """One scanner file of these documents (the generator's pages, damage and writer)."""
    from benchmarks.scanbench.generate import BatchPlan, Bench

    bench = Bench(out, SEED, [FORM], settings=settings, pool=pool)
    batch = BatchPlan(index=index, seed=SEED, format=fmt, mode=mode, dpi=dpi,
                      jpeg_quality=80 if fmt == "pdf" else None, docs=docs, order="keep",
                      turn="none", blanks=0)
    pages, _ = bench.build(batch, renders)
    rows = bench.write(batch, renders, pages)
    (name,) = {r["file"] for r in rows}
    return (out / name).read_bytes()


# ----------------------------------------------------------------------------- the desk

@pytest.fixture(scope="module")
def desk(lo_pool, tmp_path_factory):
    from forms_service.app import create_app
    from forms_service.catalogue import catalogue

    tmp = tmp_path_factory.mktemp("circuit-scans")
    with SmtpServer() as smtp:
        app = create_app({"var_dir": tmp / "var", "database_url": None, "departement_logo": None,
                          "TESTING": True, "PDF_POOL": lo_pool, "SMTP_HOST": "127.0.0.1",
                          "SMTP_PORT": smtp.port, "SMTP_STARTTLS": "false",
                          "REVIEW_SAMPLE_RATE": "0", "FORMS_SERVICE_SECURE_COOKIES": "false"})
        settings = app.extensions["forms_service.settings"]
        worker = None
        try:
            with serving(app) as base:
                people = seed(app)
                k, b = people["keys"], people["b"]
                fd = catalogue.get(FORM)
                fiches = five_fiches()
                t0 = time.monotonic()
                docs, renders, issued, intended = [], [], {}, {}
                for i, (name, (ref, ben, data)) in enumerate(fiches.items()):
                    doc = plan(fd, data, i, mode="grey")
                    # the référent prints the fiche from the service (its text, boxes empty)
                    r = Http(base, k[ref]).post(f"/api/v1/forms/{FORM}/render",
                                                params={"format": "pdf", "beneficiaire": b[ben]},
                                                json=doc.render_json)
                    assert r.status_code == 200, r.text[:500]
                    doc.document_id = r.headers["X-Document-Id"]
                    docs.append(doc)
                    renders.append(rendered(fd, doc, r.content, r.headers["X-Template-Version"],
                                            settings, lo_pool))
                    issued[name] = doc.document_id
                    intended[doc.document_id] = doc.intended
                stack = scan(tmp / "scans", 0, docs, renders, settings, lo_pool,
                             fmt="pdf", mode="grey", dpi=200)
                # the actions CG fiche comes back with the correspondant's part written by hand
                cg = list(fiches).index("actions_cg")
                back_data = copy.deepcopy(fiches["actions_cg"][2])
                back_data.setdefault("correspondant_avis", {})["observation"] = AVIS_TEXT
                back = plan(fd, back_data, 10, mode="bw", document_id=issued["actions_cg"])
                assert "correspondant_avis.observation" in back.handwritten
                back_intended = back.intended
                returned = scan(tmp / "scans", 1, [back], [renders[cg]], settings, lo_pool,
                                fmt="tiff", mode="bw", dpi=300)
                print(f"scans made in {time.monotonic() - t0:.1f} s")
                worker = start_worker(settings, threads=2, log=tmp / "worker.log",
                                      SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp.port),
                                      SMTP_STARTTLS="false", REVIEW_SAMPLE_RATE="0",
                                      MAIL_FROM=settings.mail_from,
                                      FORMS_SERVICE_PUBLIC_URL=settings.public_url)
                yield {"app": app, "base": base, "people": people, "smtp": smtp, "issued": issued,
                       "stack": stack, "returned": returned, "tmp": tmp,
                       "intended": intended, "back_intended": back_intended}
        finally:
            if worker is not None:
                stop(worker)
            app.close()


def read_batch(http: Http, files, timeout: float = 150) -> dict:
    r = http.post("/api/v1/batches", files=[("files", (name, data)) for name, data in files])
    assert r.status_code == 202, r.text
    batch_id = r.json()["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = http.get(f"/api/v1/batches/{batch_id}").json()
        if view["status"] == "done":
            return view
        time.sleep(0.3)
    raise AssertionError(f"batch not read: {view['progress']}")


def test_scanned_fiches_reach_their_correspondant_and_come_back(desk):
    base, people, smtp, issued = desk["base"], desk["people"], desk["smtp"], desk["issued"]
    k = people["keys"]
    agent = Http(base, k["agent.arr@c.example"])
    admin = Http(base, k["admin@c.example"])
    t0 = time.monotonic()
    view = read_batch(agent, [("scan-0001.pdf", desk["stack"])])
    print(f"stack read in {time.monotonic() - t0:.1f} s")
    assert view["summary"]["forms"] == 5, view["summary"]
    # what the référent wrote by hand (a reserved part) waits for the desk's agent to type in
    records = {rid: admin.get(f"/api/v1/records/{rid}").json() for rid in view["records"]}
    waiting = {rid: r for rid, r in records.items() if r["review"] == "pending"}
    assert admin.get("/api/v1/requests").json()["total"] == 5 - len(waiting)
    desk_agent = Http(base).login("agent.arr@c.example")
    for rid, r in waiting.items():
        flagged = {p for p, f in r["record"]["fields"].items() if f.get("needs_review")}
        reasons = {p: r["record"]["fields"][p]["reason"] for p in flagged}
        assert all(why.startswith("Texte manuscrit") for why in reasons.values()), reasons
        review_record(desk_agent, rid, desk["intended"][r["document_id"]])

    listed = admin.get("/api/v1/requests").json()
    assert listed["total"] == 5, listed
    by_doc = {i["document_id"]: i for i in listed["items"]}
    req = {name: by_doc[doc_id] for name, doc_id in issued.items()}
    assert req["suspension"]["types"] == ["suspension"]
    assert req["reorientation"]["types"] == ["reorientation"]
    assert req["actions_cg"]["types"] == ["actions_cg"]
    assert req["demande_appui"]["types"] == ["demande_appui"]

    def inbox(email):
        r = Http(base, k[email]).get("/api/v1/requests", params={"etat": "avis_correspondant"})
        return {i["id"] for i in r.json()["items"]}

    assert inbox("corr.arr@c.example") == {req["suspension"]["id"], req["actions_cg"]["id"]}
    assert inbox("corr.art@c.example") == {req["reorientation"]["id"], req["demande_appui"]["id"]}
    bad = req["invalid"]
    assert bad["etat"] == "a_corriger"
    assert "actions_cg_aucune_action" in {p["rule"] for p in bad["problems"]}
    mine = Http(base, k["ref.arr@c.example"]).get("/api/v1/requests", params={"etat": "a_corriger"}).json()
    assert [i["id"] for i in mine["items"]] == [bad["id"]]
    theirs = Http(base, k["ref.art@c.example"]).get("/api/v1/requests", params={"etat": "a_corriger"}).json()
    assert theirs["total"] == 0

    smtp.wait(5)
    assert len(smtp.to("corr.arr@c.example")) == 2
    assert len(smtp.to("corr.art@c.example")) == 2
    assert [m["subject"] for m in smtp.to("ref.arr@c.example")] == [
        f"Fiche de liaison n° {bad['id']} à corriger"]

    # the correspondant reads the scanned pages and gives an avis on the web
    corr = Http(base).login("corr.arr@c.example")
    rid = req["suspension"]["id"]
    page = corr.get(f"/correspondant/demandes/{rid}").text
    assert "Page 1" in page
    img = corr.get(f"/correspondant/demandes/{rid}/pages/0.png")
    assert img.headers["Content-Type"] == "image/png"
    assert Http(base).login("corr.art@c.example").get(f"/correspondant/demandes/{rid}").status_code == 404
    r = corr.post(f"/correspondant/demandes/{rid}", data={
        "csrf_token": csrf(page), "choix": "favorable", "commentaire": "Dossier complet."})
    assert r.status_code == 302
    ref = Http(base).login("ref.arr@c.example")
    assert "Dossier complet." in ref.get("/mes-demandes/").text
    smtp.wait(6)
    assert any("avis du correspondant" in m["subject"] for m in smtp.to("ref.arr@c.example"))

    # the actions CG fiche scanned again, its correspondant's part written by hand
    view = read_batch(agent, [("retour.tif", desk["returned"])])
    assert view["summary"]["forms"] == 1 and view["summary"]["needs_review"] == 1, view["summary"]
    (record_id,) = view["records"]
    cg_id = req["actions_cg"]["id"]
    waiting = admin.get(f"/api/v1/requests/{cg_id}").json()
    assert waiting["etat"] == "avis_correspondant"     # waits at the desk until typed in
    typed = review_record(desk_agent, record_id, desk["back_intended"])
    assert "champ:correspondant_avis.observation" in typed

    after = admin.get("/api/v1/requests").json()
    assert after["total"] == 5        # never a second request
    again = admin.get(f"/api/v1/requests/{cg_id}").json()
    assert again["etat"] == "decision"
    assert (again["avis"][-1]["etape"], again["avis"][-1]["choix"],
            again["avis"][-1]["source"]) == ("correspondant", "favorable", "papier")
    assert again["fiche"]["correspondant_avis"]["observation"] == AVIS_TEXT
    assert "avis du correspondant" in smtp.wait(7)[-1]["subject"]


def review_record(http: Http, record_id: int, intended: dict) -> list[str]:
    """The desk agent settles the record's open items on the review page: types what was
    written by hand (``intended``: what the generator wrote), confirms anything else.
    Returns the items settled."""
    from forms_service.catalogue.paths import get_path

    settled = []
    for _ in range(12):
        r = http.get(f"/slai/verification/{record_id}", allow_redirects=False)
        if r.status_code in (302, 303):
            return settled
        assert r.status_code == 200, r.text[:300]
        point = re.search(r'name="point" value="([^"]+)"', r.text).group(1)
        data = {"csrf_token": csrf(r.text), "point": point, "action": "confirmer"}
        if point.startswith("champ:") and get_path(intended, point[6:]) not in (None, ""):
            data.update(action="corriger", valeur=get_path(intended, point[6:]))
        answer = http.post(f"/slai/verification/{record_id}", data=data)
        assert answer.status_code == 303, answer.text[:300]
        settled.append(point)
    raise AssertionError(f"review never ended: {settled}")
