"""The EDE bounds and grid are settings that reach every way in: the API (validate and
render), the CLI (validate and render) and the printed note, per app."""

from __future__ import annotations

import html
import io
import json
import re
import zipfile
from pathlib import Path

import pytest


SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "annexe-3.json"
ITEMS = ["logement", "sante", "garde_enfants", "budget", "vie_sociale", "competences",
         "projet_professionnel", "mobilite"]
NARROW = {"EDE_BOUND_LOW": "20", "EDE_BOUND_HIGH": "30"}


def nineteen_points() -> dict:
    """The sample with paliers worth 1+1+1+2+2+2+2+8 = 19 points (indicative grid)."""
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    data["paliers"] = {item: str(p) for item, p in zip(ITEMS, [1, 1, 1, 2, 2, 2, 2, 4])}
    data.pop("complements", None)
    return data


def document_text(docx: bytes) -> str:
    """The text of a DOCX's body (word/document.xml), runs joined."""
    with zipfile.ZipFile(io.BytesIO(docx)) as z:
        xml = z.read("word/document.xml").decode("utf-8")
    return html.unescape("".join(re.findall(r"<w:t(?: [^>]*)?>([^<]*)</w:t>", xml)))


def note(text: str) -> str:
    m = re.search(r"< \d+ points : Pôle Emploi[^.]*\.", text)
    assert m, "the EDE note is not printed"
    return m.group(0)


# -- the API -----------------------------------------------------------------------------------

def test_api_validate_and_render_follow_each_app_s_bounds(make_app):
    narrow = make_app(EDE_BOUND_LOW=20, EDE_BOUND_HIGH=30)
    default = make_app()
    data = nineteen_points()
    for app, orientation in ((narrow, "professionnelle"), (default, "equipe_pluridisciplinaire"),
                             (narrow, "professionnelle")):
        r = app.test_client().post("/api/v1/forms/annexe-3/validate", json=data)
        assert r.status_code == 200
        assert r.get_json()["derived"]["ede"]["orientation"] == orientation

    narrow_doc = narrow.test_client().post("/api/v1/forms/annexe-3/render?format=docx", json=data)
    default_doc = default.test_client().post("/api/v1/forms/annexe-3/render?format=docx", json=data)
    assert narrow_doc.status_code == default_doc.status_code == 200
    narrow_text, default_text = document_text(narrow_doc.data), document_text(default_doc.data)
    assert note(narrow_text) == ("< 20 points : Pôle Emploi · > 30 points : sphère solidarité · "
                                 "de 20 à 30 : l'équipe pluridisciplinaire se prononce.")
    assert note(default_text).startswith("< 18 points : Pôle Emploi · > 35 points")
    assert "Orientation prioritaire Pôle Emploi" in narrow_text          # the proposal printed
    assert "L'équipe pluridisciplinaire ou d'orientation se prononce" in default_text
    # what was printed differs, so does the template version
    assert narrow_doc.headers["X-Template-Version"] != default_doc.headers["X-Template-Version"]


def test_an_app_s_grid_is_its_own(make_app, tmp_path):
    import yaml

    grid = {"modele_indicatif": False, "titre": "Grille du département",
            "points": [1, 3, 5, 10, 15, 20], "couleurs": [None, None, None, "rose", "rose", "bleu"],
            "items": [{"code": f"item{n}", "label": f"Item {n}",
                       "paliers": [f"Palier {p}" for p in range(1, 7)]} for n in range(1, 9)]}
    path = tmp_path / "grille.yaml"
    path.write_text(yaml.safe_dump(grid, allow_unicode=True), encoding="utf-8")
    own = make_app(FORMS_SERVICE_EDE_GRID=str(path))
    default = make_app()
    data = nineteen_points()
    data["paliers"] = {f"item{n}": "1" for n in range(1, 9)}
    r = own.test_client().post("/api/v1/forms/annexe-3/validate", json=data)
    assert r.get_json()["valid"] is True and r.get_json()["derived"]["ede"]["total"] == 8
    r = default.test_client().post("/api/v1/forms/annexe-3/validate", json=data)
    assert {e["rule"] for e in r.get_json()["errors"]} == {"champ_inconnu"}


# -- the CLI -------------------------------------------------------------------------------------

@pytest.fixture
def narrow_runner(runner, monkeypatch):
    for key, value in NARROW.items():
        monkeypatch.setenv(key, value)
    return runner


def test_cli_validate_follows_the_environment(narrow_runner, tmp_path):
    f = tmp_path / "ede.json"
    f.write_text(json.dumps(nineteen_points()), encoding="utf-8")
    r = narrow_runner.run("validate", "annexe-3", f)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["derived"]["ede"]["orientation"] == "professionnelle"


def test_cli_validate_default_bounds(runner, tmp_path):
    f = tmp_path / "ede.json"
    f.write_text(json.dumps(nineteen_points()), encoding="utf-8")
    r = runner.run("validate", "annexe-3", f)
    assert json.loads(r.stdout)["derived"]["ede"]["orientation"] == "equipe_pluridisciplinaire"


def test_cli_render_prints_the_environment_s_bounds(narrow_runner, tmp_path):
    f = tmp_path / "ede.json"
    f.write_text(json.dumps(nineteen_points()), encoding="utf-8")
    out = tmp_path / "ede.docx"
    r = narrow_runner.run("render", "annexe-3", "--data", f, "--format", "docx", "-o", out)
    assert r.exit_code == 0, r.output
    text = document_text(out.read_bytes())
    assert note(text).startswith("< 20 points : Pôle Emploi · > 30 points")
    assert "Orientation prioritaire Pôle Emploi" in text
