"""Contract of the ``forms-service`` command: JSON shapes, exit codes
(0 ok / 1 invalid / 2 unusable input / 3 missing component), French messages on
stderr and never a traceback."""

from __future__ import annotations

import json
import sys
import types

import click
import pytest

from forms_service import cli
from forms_service.catalogue import catalogue
from forms_service.cli_context import pass_settings
from forms_service.errors import ComponentMissing

FORM = "fiche-liaison"
REFERENCE = next(fd.id for fd in catalogue.forms() if fd.kind != "form")


def no_traceback(result):
    assert "Traceback" not in result.output and "Traceback" not in result.stderr


def test_forms_json(runner):
    r = runner.run("forms", "--json")
    assert r.exit_code == 0
    forms = json.loads(r.stdout)
    assert [f["id"] for f in forms] == [fd.id for fd in catalogue.forms()]
    assert all(set(f) == {"id", "title", "kind", "pages"} for f in forms)


def test_forms_text(runner):
    r = runner.run("forms")
    assert r.exit_code == 0
    assert all(fd.id in r.stdout for fd in catalogue.forms())


def test_schema(runner):
    r = runner.run("schema", FORM)
    assert r.exit_code == 0
    assert json.loads(r.stdout) == catalogue.get(FORM).json_schema()


@pytest.mark.parametrize("form,words", [(REFERENCE, "liste de référence"), ("inconnu", "inconnu")])
def test_schema_of_a_reference_or_unknown_form_exits_2(runner, form, words):
    r = runner.run("schema", form)
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr.startswith("Erreur : ") and words in r.stderr
    no_traceback(r)


def test_validate_invalid_data_exits_1(runner, tmp_path):
    f = tmp_path / "vide.json"
    f.write_text("{}")
    r = runner.run("validate", FORM, f)
    assert r.exit_code == 1
    report = json.loads(r.stdout)
    assert set(report) >= {"valid", "errors"} and report["valid"] is False
    assert all({"path", "rule", "severity", "message"} <= set(p) for p in report["errors"])


def test_validate_output_is_the_library_report(runner, tmp_path):
    from forms_service.validation import validate

    data = {"beneficiaire": {"nom": "Exemple"}}
    f = tmp_path / "d.json"
    f.write_text(json.dumps(data))
    r = runner.run("validate", "annexe-7", f)  # an alias
    assert json.loads(r.stdout) == validate(catalogue.get(FORM), data).as_dict()


def test_validate_valid_data_exits_0(runner, tmp_path, monkeypatch):
    """Exit 0 exactly when the report is valid (the report itself is the library's)."""
    import forms_service.validation as validation

    class Report:
        valid = True

        def as_dict(self):
            return {"valid": True, "errors": []}

    monkeypatch.setattr(validation, "validate", lambda fd, data, **kw: Report())
    f = tmp_path / "ok.json"
    f.write_text("{}")
    r = runner.run("validate", FORM, f)
    assert r.exit_code == 0 and json.loads(r.stdout) == {"valid": True, "errors": []}


def test_validate_reads_stdin(runner):
    r = runner.run("validate", FORM, "-", input="{}")
    assert r.exit_code == 1 and json.loads(r.stdout)["valid"] is False


@pytest.mark.parametrize("content,words", [
    ("{pas du json", "JSON valide"),
    ("[1, 2]", "objet JSON"),
    ("", "JSON valide"),
    (b"\xff\xfe{}", "UTF-8"),
])
def test_validate_unreadable_file_exits_2(runner, tmp_path, content, words):
    f = tmp_path / "x.json"
    (f.write_bytes if isinstance(content, bytes) else f.write_text)(content)
    r = runner.run("validate", FORM, f)
    assert r.exit_code == 2, r.output
    assert r.stdout == "" and words in r.stderr
    no_traceback(r)


def test_validate_missing_file_or_directory_exits_2(runner, tmp_path):
    r = runner.run("validate", FORM, tmp_path / "absent.json")
    assert r.exit_code == 2 and "introuvable" in r.stderr
    r = runner.run("validate", FORM, tmp_path)
    assert r.exit_code == 2 and "Erreur" in r.stderr
    no_traceback(r)


@pytest.mark.parametrize("form", ["inconnu", REFERENCE])
def test_validate_unknown_form_or_reference_exits_2(runner, tmp_path, form):
    f = tmp_path / "d.json"
    f.write_text("{}")
    r = runner.run("validate", form, f)
    assert r.exit_code == 2 and r.stderr.startswith("Erreur : ")
    no_traceback(r)


def test_rules_json(runner):
    r = runner.run("rules", "--json")
    assert r.exit_code == 0
    rules = json.loads(r.stdout)
    assert rules and all(set(x) == {"code", "form", "severity", "message"} for x in rules)
    expected = [x.as_dict() for fd in catalogue.forms() if fd.kind == "form" for x in fd.rules()]
    assert rules == expected


def test_rules_of_one_form(runner):
    r = runner.run("rules", FORM, "--json")
    assert r.exit_code == 0
    assert {x["form"] for x in json.loads(r.stdout)} == {FORM}
    r = runner.run("rules", FORM)
    assert r.exit_code == 0 and r.stdout.count("\n") == len(catalogue.get(FORM).rules())
    assert runner.run("rules", "inconnu").exit_code == 2


def test_db_upgrade_creates_the_tables(runner, tmp_path):
    from sqlalchemy import create_engine, inspect

    r = runner.run("db", "upgrade")
    assert r.exit_code == 0, r.output
    db_file = tmp_path / "var" / "forms.db"
    engine = create_engine(f"sqlite:///{db_file}")
    assert {"template_version", "issued_document", "record", "audit_event"} <= \
        set(inspect(engine).get_table_names())
    engine.dispose()


@pytest.fixture
def plugin(monkeypatch):
    """A fake team module contributing commands through COMMAND_MODULES."""
    module = types.ModuleType("fake_team_cli")

    @click.command("bonjour")
    def bonjour():
        click.echo("bonjour")

    @click.command("convertir")
    def convertir():
        raise ComponentMissing("LibreOffice n'est pas démarré")

    @click.command("departement")
    @pass_settings
    def departement(settings):
        click.echo(settings.departement_name)

    module.commands = [bonjour, convertir, departement]
    monkeypatch.setitem(sys.modules, "fake_team_cli", module)
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["fake_team_cli"])
    monkeypatch.setattr(cli.FormsGroup, "_plugins_loaded", False)
    yield module
    for name in ("bonjour", "convertir", "departement"):
        cli.main.commands.pop(name, None)


def test_other_modules_add_commands(runner, plugin):
    r = runner.run("bonjour")
    assert r.exit_code == 0 and r.stdout == "bonjour\n"
    assert "convertir" in runner.run("--help").stdout


def test_forms_error_maps_to_its_exit_code(runner, plugin):
    r = runner.run("convertir")
    assert r.exit_code == ComponentMissing.exit_code == 3
    assert r.stderr == "Erreur : LibreOffice n'est pas démarré\n"


def test_commands_get_the_settings_the_group_read_once(runner, plugin, monkeypatch):
    monkeypatch.setenv("DEPARTEMENT_NAME", "Département du Nord")
    r = runner.run("departement")
    assert r.exit_code == 0 and r.stdout == "Département du Nord\n"


def test_an_invalid_setting_is_one_french_line_and_exit_2(runner, monkeypatch):
    monkeypatch.setenv("EDE_BOUND_LOW", "beaucoup")
    r = runner.run("forms")
    assert r.exit_code == 2
    assert r.stderr == "Erreur : Configuration invalide : EDE_BOUND_LOW : nombre entier attendu\n"
