"""The template contract check: committed templates pass; each kind of break is named."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from forms_service.catalogue import catalogue
from forms_service.config import Settings
from forms_service.render.contract import check_all, check_template

TEMPLATES = Path(Settings.from_env(environ={}).templates_dir) / "docx"


def test_committed_templates_honour_their_definitions():
    results = check_all(Settings.from_env(environ={}))
    assert {fd.id for fd in catalogue.forms()} <= set(results)
    assert {k: [p.message for p in v] for k, v in results.items() if v} == {}


def test_cli_templates_check_exits_zero(runner):
    result = runner.run("templates", "check")
    assert result.exit_code == 0, result.output
    assert "OK  fiche-liaison" in result.output


def _edited(tmp_path: Path, old: str, new: str, name: str = "fiche-liaison.docx") -> Path:
    """A copy of a template whose document.xml has ``old`` replaced by ``new`` (as an edit in Word would)."""
    src = TEMPLATES / name
    dst = tmp_path / name
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "word/document.xml":
                text = data.decode("utf-8")
                assert old in text, old
                data = text.replace(old, new, 1).encode("utf-8")
            zout.writestr(item, data)
    return dst


def _rules(problems):
    return {p.rule for p in problems}


def test_removed_box_is_reported(tmp_path):
    path = _edited(tmp_path, "{{ objet|box('autre') }}", "")
    problems = check_template(catalogue.get("fiche-liaison"), path)
    assert "case_absente" in _rules(problems)
    assert any("objet = autre" in p.message for p in problems)


def test_unknown_variable_is_reported(tmp_path):
    path = _edited(tmp_path, "{{ beneficiaire.prenom }}", "{{ beneficiaire.prenomm }}")
    problems = check_template(catalogue.get("fiche-liaison"), path)
    assert "variable_inconnue" in _rules(problems)
    assert "champ_absent" in _rules(problems)   # and the real field is no longer printed


def test_unknown_top_level_variable_is_reported(tmp_path):
    path = _edited(tmp_path, "{{ mds }}", "{{ mds }}{{ telephone_portable }}")
    problems = check_template(catalogue.get("fiche-liaison"), path)
    assert any(p.rule == "variable_inconnue" and "telephone_portable" in p.message for p in problems)


def test_box_for_unknown_code_is_reported(tmp_path):
    path = _edited(tmp_path, "{{ objet|box('autre') }}", "{{ objet|box('autres') }}")
    problems = check_template(catalogue.get("fiche-liaison"), path)
    assert "code_inconnu" in _rules(problems)


def test_tag_split_across_runs_by_word_still_passes(tmp_path):
    # Word splits a tag across runs when one part is retyped or spell-checked.
    path = _edited(tmp_path, "{{ mds }}", "{{ m</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>ds }}")
    assert check_template(catalogue.get("fiche-liaison"), path) == []


def test_broken_tag_names_its_paragraph(tmp_path):
    path = _edited(tmp_path, "{{ mds }}", "{{ mds ")
    problems = check_template(catalogue.get("fiche-liaison"), path)
    assert _rules(problems) == {"balise_invalide"}
    assert "paragraphe" in problems[0].message


def test_not_a_docx_is_reported(tmp_path):
    path = tmp_path / "fiche-liaison.docx"
    path.write_bytes(b"not a zip")
    problems = check_template(catalogue.get("fiche-liaison"), path)
    assert _rules(problems) == {"modele_illisible"}


def test_cli_exits_non_zero_with_a_readable_list(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from forms_service import cli
    shutil.copytree(TEMPLATES.parent, tmp_path / "templates")
    (tmp_path / "templates" / "docx" / "annexe-3.docx").unlink()
    _edited(tmp_path, "{{ objet|box('autre') }}", "")
    shutil.copy(tmp_path / "fiche-liaison.docx", tmp_path / "templates" / "docx" / "fiche-liaison.docx")
    monkeypatch.setenv("FORMS_SERVICE_TEMPLATES_DIR", str(tmp_path / "templates"))
    result = CliRunner().invoke(cli.main, ["templates", "check"])
    assert result.exit_code == 1
    assert "ERR fiche-liaison" in result.output and "Autre(s)" in result.output
    assert "Modèle absent : annexe-3.docx" in result.output
