"""Property tests of the validators and renderers (hypothesis), with the session's
LibreOffice pool:

* any data a form's JSON Schema describes and ``validate`` accepts renders to a DOCX
  whose XML parts are well formed and that LibreOffice opens and converts to a PDF;
* any JSON (the schema's data with a part replaced by anything) that is refused is
  refused with the one error shape, in French.

Examples are few (``PROPERTY_EXAMPLES``, default 6 per form: each is a real PDF);
the data is drawn from the form's own JSON Schema, the document clients follow.
"""

from __future__ import annotations

import io
import os
import zipfile
from xml.dom import minidom

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forms_service.catalogue import catalogue
from forms_service.render.pdf import pdf_page_count
from forms_service.render.service import get_service
from forms_service.validation import validate
from test_hardening_messages import assert_french
from test_render_service import needs_libreoffice

FORMS = [fd for fd in catalogue.forms() if fd.kind == "form"]
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "6"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))

# Text as people type it: any printable character, accents, tabs and line breaks.
TEXT_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Co", "Cn"),
                           include_characters="\t\n\r")


def from_schema(schema: dict, defs: dict, depth: int = 0) -> st.SearchStrategy:
    """Data fitting the JSON Schema subset pydantic writes for our forms."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, depth)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, defs, depth) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum", -10 ** 6), schema.get("maximum", 10 ** 6))
    if kind == "string":
        if schema.get("format") == "date":
            return st.dates().map(lambda d: d.isoformat())
        return st.text(TEXT_CHARS, max_size=min(schema.get("maxLength", 200), 200))
    if kind == "array":
        items = from_schema(schema["items"], defs, depth + 1)
        return st.lists(items, max_size=min(schema.get("maxItems", 3), 3),
                        unique=bool(schema.get("uniqueItems")))
    if kind == "object":
        props = schema.get("properties", {})
        return st.fixed_dictionaries({}, optional={
            k: from_schema(v, defs, depth + 1) for k, v in props.items()})
    return st.nothing()


def form_data(fd) -> st.SearchStrategy:
    schema = fd.json_schema()
    return from_schema(schema, schema.get("$defs", {}))


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) |
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20),
    lambda children: st.lists(children, max_size=3) |
    st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)


@pytest.fixture(scope="module")
def service(tmp_path_factory, lo_pool):
    from forms_service.app import create_app

    app = create_app({"var_dir": tmp_path_factory.mktemp("properties") / "var",
                      "database_url": None, "departement_logo": None,
                      "TESTING": True, "PDF_POOL": lo_pool})
    yield get_service(app)
    app.close()


def assert_docx_well_formed(content: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        for name in z.namelist():
            if name.endswith(".xml") or name.endswith(".rels"):
                minidom.parseString(z.read(name))


@needs_libreoffice
@pytest.mark.parametrize("fd", FORMS, ids=lambda fd: fd.id)
def test_accepted_data_renders_to_docx_and_pdf(service, fd):
    rendered = []

    @SETTINGS
    @given(data=form_data(fd))
    def prop(data):
        if not validate(fd, data).model_valid:
            return  # refused data: the other property
        rendered.append(data)
        docx = service.render(fd.id, data, fmt="docx")
        assert_docx_well_formed(docx.content)
        pdf = service.render(fd.id, data, fmt="pdf")
        assert pdf.content.startswith(b"%PDF") and pdf_page_count(pdf.content) >= (fd.pages or 1)

    prop()
    assert len(rendered) >= EXAMPLES // 2  # the schema's data is mostly accepted


@pytest.mark.parametrize("fd", FORMS, ids=lambda fd: fd.id)
def test_refused_json_is_refused_in_french_with_the_one_shape(service, fd):
    client = service.app.test_client()

    @settings(max_examples=EXAMPLES * 5, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(base=form_data(fd), junk=ANY_JSON, where=st.integers(0, 50), whole=st.booleans())
    def prop(base, junk, where, whole):
        if whole:
            body = junk
        else:
            keys = sorted(base) or ["champ"]
            body = dict(base, **{keys[where % len(keys)]: junk})
        r = client.post(f"/api/v1/forms/{fd.id}/validate", json=body)
        assert r.status_code in (200, 400), r.status_code
        report = r.get_json()
        problems = report["errors"]
        if r.status_code == 200 and report["valid"]:
            return
        for p in problems:
            assert {"path", "rule", "message"} <= set(p)
            assert_french(p["message"])
        r = client.post(f"/api/v1/forms/{fd.id}/render", json=body)
        if r.status_code == 200:  # refused only by a business rule: a warning, not a block
            return
        assert r.status_code in (400, 422), r.status_code
        errors = r.get_json()
        assert set(errors) == {"errors"} and errors["errors"]
        for p in errors["errors"]:
            assert set(p) == {"path", "rule", "message"}
            assert_french(p["message"])

    prop()
