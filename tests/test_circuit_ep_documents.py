"""A session's agenda and minutes as PDF (issue 13): definitions in the catalogue's format,
templates built from them by the forms' builder (the committed DOCX are the builder's
output), rendered by the render pipeline and converted by real LibreOffice; what they
print of the person is their name only. ``EP_PDF_DIR=…`` keeps the PDFs to look at."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import csrf_token
from tests.ep_data import START, seed_ep, to_ep
from tests.test_circuit_web import _login

ROOT = Path(__file__).resolve().parent.parent


def keep_pdf(pdf: bytes, name: str) -> None:
    keep = os.environ.get("EP_PDF_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / name).write_bytes(pdf)


def _text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


def test_agenda_and_minutes_print_through_libreoffice(make_app, lo_pool, tmp_path):
    from forms_service import db
    from forms_service.beneficiaries.models import Beneficiary

    app = make_app(clock_now=START, PDF_POOL=lo_pool)
    people = seed_ep(app)
    api = app.test_client()
    susp = to_ep(api, people, "arr1", "suspension")
    reo = to_ep(api, people, "arr2", "reorientation")
    sec = app.test_client()
    _login(sec, "ep.arr@c.example")
    token = csrf_token(sec.get("/ep/").get_data(as_text=True))
    url = sec.post("/ep/seances", data={"csrf_token": token, "date": "2027-01-20", "heure": "14:00",
                                        "lieu": "MDS de l'Arrageois, salle du conseil"}
                   ).headers["Location"].split("?")[0]
    sec.post(f"{url}/inscrire", data={"csrf_token": token, "demandes": [str(susp), str(reo)]})
    sec.post(f"{url}/demandes/{susp}/avis", data={"csrf_token": token, "choix": "favorable",
                                                  "commentaire": "Suspension de 50 % pendant deux mois."})

    with app.app_context(), db.session() as s:
        b = s.get(Beneficiary, people["b"]["arr1"])
        name, caf, birth = f"{b.nom} {b.prenom}", b.num_caf, b.date_naissance

    agenda = sec.get(f"{url}/ordre-du-jour.pdf")
    assert agenda.status_code == 200 and agenda.mimetype == "application/pdf"
    assert agenda.data[:5] == b"%PDF-"
    assert 'filename="ep-ordre-du-jour_seance-' in agenda.headers["Content-Disposition"]
    keep_pdf(agenda.data, "ep-ordre-du-jour.pdf")
    text = _text(agenda.data, tmp_path)
    assert "ORDRE DU JOUR" in text.upper() and "20/01/2027" in text and "14:00" in text
    assert name.split()[0] in text and "Suspension" in text and "Réorientation" in text
    assert "04/02/2027" in text                               # the avis is due a month after referral
    assert caf not in text and birth.strftime("%d/%m/%Y") not in text

    minutes = sec.get(f"{url}/proces-verbal.pdf")
    assert minutes.status_code == 200
    keep_pdf(minutes.data, "ep-proces-verbal.pdf")
    text = _text(minutes.data, tmp_path)
    assert "PROCÈS-VERBAL" in text.upper() and "Suspension de 50 %" in text
    assert "Favorable" in text and "Non examinée (reportée)" in text
    assert caf not in text

    other = app.test_client()
    _login(other, "ep.art@c.example")
    assert other.get(f"{url}/ordre-du-jour.pdf").status_code == 404


def test_the_committed_templates_are_the_builder_s(tmp_path):
    from forms_service.circuit import ep_documents

    for built in ep_documents.build_templates(tmp_path):
        assert built.read_bytes() == (ROOT / "templates" / "docx" / built.name).read_bytes(), built.name
