"""The same forms with and without JavaScript (issue 14: « the pages work without
JavaScript; the server's validation is the truth »): the CERS (with its PAP rows), the EDE
and the DSP typed into the same pages by chromium twice, once with JavaScript and once with
it disabled (``java_script_enabled=False``: list rows are then added by posting the form,
nothing runs in the page). Both give the same French errors for the same broken data, the
API's, and the same issued document's record, the API's for that data.

(CERP and the fiche de liaison are checked without JavaScript through the test client in
``test_referent_pages.py``.)
"""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import select

from forms_service import db
from tests import people_data
from tests.referent_browser import (add_rows, browser, error_texts, fill, form_url,  # noqa: F401
                                    needs_browser, served, signed_in)
from tests.referent_data import dump, posted, sample, without_reserved

pytestmark = needs_browser


#: One rule broken per form: what is typed differently (a CERS of 33 months, a DSP without
#: the person's name) or left out (an EDE item without its palier) at first.
TYPED_WRONG = {"cers": {"cer-date_fin": "2013-12-31"}, "annexe-3": {},
               "annexe-2": {"beneficiaire-nom": ""}}
LEFT_OUT = {"cers": set(), "annexe-3": {"paliers-sante"}, "annexe-2": set()}


def _broken(form_id: str, data: dict) -> dict:
    """``data`` as first typed (the API's view of the same mistake)."""
    out = copy.deepcopy(data)
    if form_id == "cers":
        out["cer"]["date_fin"] = "2013-12-31"
    elif form_id == "annexe-3":
        out["paliers"].pop("sante")
    else:
        out["beneficiaire"].pop("nom")
    return out


def _last_document(app, form_id: str, beneficiary_id: int):
    with app.app_context(), db.session() as s:
        return s.scalars(select(db.IssuedDocument)
                         .where(db.IssuedDocument.form_id == form_id,
                                db.IssuedDocument.beneficiary_id == beneficiary_id)
                         .order_by(db.IssuedDocument.created_at.desc())).first()


@pytest.mark.parametrize("form_id", ["cers", "annexe-3", "annexe-2"])
def test_same_record_and_errors_without_javascript(browser, served, form_id):
    app, base, info = served
    person = info["beneficiaries"]["ref1_b"]
    data = without_reserved(form_id, sample(form_id))
    broken = _broken(form_id, data)
    wrong, left_out = TYPED_WRONG[form_id], LEFT_OUT[form_id]
    first = [(n, wrong.get(n, v)) for n, v in posted(data) if n not in left_out]
    then = [(n, v) for n, v in posted(data) if n in wrong or n in left_out]
    seen: dict[bool, dict] = {}
    for javascript in (True, False):
        context, page = signed_in(browser, base, javascript=javascript)
        try:
            page.goto(form_url(base, info, form_id, "ref1_b"))
            add_rows(page, data)
            fill(page, first)
            page.click('#saisie .barre-actions button[value="verifier"]')
            page.wait_for_load_state()
            errors = error_texts(page)
            fill(page, then)           # corrected; the rest came back from the server as typed
            with page.expect_download() as download:
                page.click('#saisie button[value="docx"]')
            assert download.value.suggested_filename.endswith(".docx")
            doc = _last_document(app, form_id, person)
            seen[javascript] = {"errors": errors, "document": doc.document_id, "record": doc.data}
            assert page.js_errors == []
        finally:
            context.close()
    with_js, without_js = seen[True], seen[False]
    assert with_js["document"] != without_js["document"]          # two documents issued
    assert without_js["record"] == with_js["record"] == dump(form_id, data)
    assert without_js["errors"] == with_js["errors"]
    api = app.test_client().post(f"/api/v1/forms/{form_id}/validate", json=broken,
                                 headers=people_data.headers(info["keys"]["ref1@t.example"]))
    api_errors = [e["message"] for e in api.get_json()["errors"]]
    assert with_js["errors"]["resume"] and all(
        any(line.startswith(m) for m in api_errors) for line in with_js["errors"]["resume"])
