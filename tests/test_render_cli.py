"""``forms-service render`` and ``forms-service layout``: files written, exit codes
(0 done, 1 invalid data with paths on stderr, 2 unreadable or unknown, 3 LibreOffice
missing), batches into a folder or a ZIP. The CLI builds its app from the environment;
``pdf_runner`` hands it the session's pool (``app_config``), already started."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from forms_service.render.pdf import pdf_page_count
from test_render_service import assert_pages_identify, needs_libreoffice, sample

FORM = "fiche-liaison"


@pytest.fixture
def pdf_runner(runner, lo_pool):
    """The CLI runner, its app using the session's pool."""
    runner.app_config = {"PDF_POOL": lo_pool}
    return runner


def no_traceback(result) -> None:
    assert "Traceback" not in result.output and "Traceback" not in result.stderr


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return path


@needs_libreoffice
def test_render_pdf_to_a_file(pdf_runner, lo_pool, tmp_path, monkeypatch):
    # LibreOffice's path: the fiche's sample takes the fast path when its probes are on disk
    # (tests/test_pdf_fastpath.py proves that path), and this test is about the CLI's pool
    monkeypatch.setenv("PDF_FAST_PATH", "false")
    data = write_json(tmp_path / "fiche.json", sample(FORM) or {})
    out = tmp_path / "fiche.pdf"
    before = lo_pool.stats["conversions"]
    r = pdf_runner.run("render", "annexe-7", "--data", data, "--format", "pdf", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert lo_pool.stats["conversions"] > before  # the session's warm pool did it
    assert r.stdout.strip() == str(out)
    pdf = out.read_bytes()
    assert pdf_page_count(pdf) == 3
    no_traceback(r)
    layout = pdf_runner.run("layout", FORM, "--json")
    assert layout.exit_code == 0, layout.stderr
    layout = json.loads(layout.stdout)
    assert layout["form"] == FORM and len(layout["pages"]) == 3


def test_render_docx_into_a_folder_with_the_default_name(runner, tmp_path):
    from forms_service import db
    from forms_service.app import create_app

    r = runner.run("render", FORM, "--format", "docx", "-o", f"{tmp_path}/sortie/")
    assert r.exit_code == 0, r.stderr
    written = Path(r.stdout.strip())
    assert written.parent == tmp_path / "sortie" and written.name.startswith(f"{FORM}_")
    assert written.suffix == ".docx" and written.read_bytes()[:2] == b"PK"
    doc_id = written.stem.rsplit("_", 1)[1]
    # Findings of the blank form: on stderr, not blocking.
    assert "page1_champ_obligatoire" in r.stderr
    app = create_app({"TESTING": True})
    with app.app_context(), db.session() as s:
        row = s.get(db.IssuedDocument, doc_id)
        assert row.created_by == "console" and row.format == "docx"
        assert s.query(db.AuditEvent).filter_by(document_id=doc_id).one().actor == "console"


def test_invalid_data_exits_1_with_paths_on_stderr(runner, tmp_path):
    data = write_json(tmp_path / "bad.json", {"mds": "M" * 61, "beneficiaire": {"nom": 3}})
    r = runner.run("render", FORM, "--data", data, "--format", "docx", "-o", tmp_path / "x.docx")
    assert r.exit_code == 1
    assert r.stderr.startswith("Erreur : ")
    assert "mds" in r.stderr and "longueur_maximale" in r.stderr
    assert "beneficiaire.nom" in r.stderr and "type_invalide" in r.stderr
    assert not (tmp_path / "x.docx").exists()
    no_traceback(r)


def test_strict_exits_1_with_rule_codes(runner, tmp_path):
    data = write_json(tmp_path / "autre.json", {"objet": ["autre"]})
    r = runner.run("render", FORM, "--data", data, "--format", "docx", "--strict",
                   "-o", tmp_path / "x.docx")
    assert r.exit_code == 1 and "objet_autre_non_precise" in r.stderr


@pytest.mark.parametrize("args,words", [
    (["render", "nope", "--format", "docx"], "inconnu"),
    (["render", FORM, "--data", "/nonexistent/file.json", "--format", "docx"], "introuvable"),
    (["render", "annexe-1", "--data", "DATA", "--format", "docx"], "liste de référence"),
    (["layout", "annexe-1"], "liste de référence"),
])
def test_unusable_input_exits_2(runner, tmp_path, args, words):
    data = write_json(tmp_path / "data.json", {"code": "x"})
    r = runner.run(*[str(data) if a == "DATA" else a for a in args])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("Erreur : ") and words in r.stderr
    no_traceback(r)


def test_not_json_exits_2(runner, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{\"mds\": ", encoding="utf-8")
    r = runner.run("render", FORM, "--data", bad, "--format", "docx")
    assert r.exit_code == 2 and "JSON" in r.stderr


def test_missing_libreoffice_exits_3(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("FORMS_SOFFICE", "/nonexistent/soffice")
    r = runner.run("render", FORM, "--format", "pdf", "-o", tmp_path / "x.pdf")
    assert r.exit_code == 3
    assert "LibreOffice" in r.stderr
    no_traceback(r)
    assert runner.run("render", FORM, "--format", "docx", "-o", tmp_path / "x.docx").exit_code == 0


@needs_libreoffice
def test_json_lines_batch_into_a_zip(pdf_runner, tmp_path):
    lines = [json.dumps(sample(FORM) or {}), "", json.dumps({"mds": "MDS de Lens"}), "{}"]
    data = tmp_path / "lot.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "lot.zip"
    r = pdf_runner.run("render", FORM, "--data", data, "--format", "pdf", "-o", out)
    assert r.exit_code == 0, r.stderr
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        sidecar = json.loads(z.read("findings.json"))
        assert len(names) == 4 and names[-1] == "findings.json"
        for entry in sidecar:
            assert_pages_identify(z.read(entry["file"]), FORM, entry["template_version"],
                                  entry["document_id"])
    assert [e["index"] for e in sidecar] == [0, 1, 2]


def test_batch_into_a_folder_and_a_bad_line(runner, tmp_path):
    data = tmp_path / "lot.jsonl"
    data.write_text('{}\n{"mds": "MDS de Lens"}\n', encoding="utf-8")
    r = runner.run("render", FORM, "--data", data, "--format", "docx", "-o", f"{tmp_path}/lot/")
    assert r.exit_code == 0, r.stderr
    files = sorted(p.name for p in (tmp_path / "lot").iterdir())
    assert files[0].startswith("001_") and files[1].startswith("002_") and files[2] == "findings.json"
    sidecar = json.loads((tmp_path / "lot" / "findings.json").read_text(encoding="utf-8"))
    assert [e["file"] for e in sidecar] == files[:2]
    # one bad line: nothing rendered, exit 1, the item named
    data.write_text('{}\n{"mds": 1}\n', encoding="utf-8")
    r = runner.run("render", FORM, "--data", data, "--format", "docx", "-o", f"{tmp_path}/lot2/")
    assert r.exit_code == 1 and "items.1.mds" in r.stderr
    assert not (tmp_path / "lot2").exists()
    # a batch needs -o
    assert runner.run("render", FORM, "--data", data, "--format", "docx").exit_code == 2
    bad = tmp_path / "cassé.jsonl"
    bad.write_text('{}\n{"mds": \n', encoding="utf-8")
    r = runner.run("render", FORM, "--data", bad, "--format", "docx", "-o", tmp_path / "l.zip")
    assert r.exit_code == 2 and "ligne 2" in r.stderr


def test_layout_text(pdf_runner):
    r = pdf_runner.run("layout", "annexe-7")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith(f"{FORM} · modèle ") and "page 3" in r.stdout
