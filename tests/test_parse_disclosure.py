"""Reading a form back discloses nothing the caller may not see (issue 10).

One référent uploads a fillable PDF that carries, in its metadata, the document id
of a CER issued for another référent's beneficiary: the record comes back without
that id (a warning says so) and without any of that beneficiary's data. The same
file uploaded by the other référent is reconciled with the issued document: the
test can fail."""

from __future__ import annotations

import io
import json

import pytest

from forms_service.render.pdf import get_pool, libreoffice_available
from people_data import headers, seed
from test_parse_roundtrip import sample, skeleton

pytestmark = pytest.mark.skipif(not libreoffice_available(),
                                reason="LibreOffice is not installed (no soffice)")


@pytest.fixture
def app(make_app, tmp_path):
    pool = get_pool({"VAR_DIR": str(tmp_path / "pool"), "PDF_POOL_SIZE": 1})
    pool.start()
    app = make_app(PDF_POOL=pool)
    yield app
    box = app.extensions.get("parsers.sandbox")
    if box is not None:
        box.close()
    pool.close()


def _with_document_id(pdf: bytes, document_id: str) -> bytes:
    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        doc.docinfo["/RsaDocumentId"] = document_id
        out = io.BytesIO()
        doc.save(out)
    return out.getvalue()


def test_an_uploaded_id_of_another_referents_document_reveals_nothing(app):
    people = seed(app)
    client = app.test_client()
    ref1, ref2 = (headers(people["keys"][e]) for e in ("ref1@t.example", "ref2@t.example"))
    data = sample("cers")
    theirs = client.post(f"/api/v1/forms/cers/render?format=pdf&fillable=true"
                         f"&beneficiaire={people['beneficiaries']['ref2']}", headers=ref2, json=data)
    assert theirs.status_code == 200
    target = theirs.headers["X-Document-Id"]
    mine = client.post("/api/v1/forms/cers/render?format=pdf&fillable=true", headers=ref1,
                       json=skeleton("cers", data))
    forged = _with_document_id(mine.data, target)
    secrets = [data["beneficiaire"]["nom"], data["beneficiaire"]["prenom"],
               data["beneficiaire"]["num_caf"]]

    def upload(who):
        response = client.post("/api/v1/parse", headers=who,
                               data={"files": (io.BytesIO(forged), "retour.pdf")})
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    as_ref1 = upload(ref1)
    body = json.dumps(as_ref1, ensure_ascii=False)
    assert as_ref1[0]["document_id"] is None
    assert "document_inaccessible" in {e["rule"] for e in as_ref1[0]["validation"]["errors"]}
    for value in secrets:
        assert value not in body, value
    assert target not in body

    as_ref2 = upload(ref2)          # the beneficiary's own référent: reconciled
    assert as_ref2[0]["document_id"] == target
    assert data["beneficiaire"]["nom"] in json.dumps(as_ref2, ensure_ascii=False)
