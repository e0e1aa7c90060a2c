"""``forms-service directory import FILE`` / ``export [FILE]`` / ``history``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from sqlalchemy import select

from forms_service.errors import BadRequest


def _read(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadRequest(f"Fichier introuvable : {file}", path="file") from None
    except UnicodeDecodeError:
        raise BadRequest(f"Le fichier {file} n'est pas un texte UTF-8", path="file") from None


@click.group("directory", help="Annuaire : territoires, MDS, SLAI, organismes.")
def directory_group() -> None:
    pass


@directory_group.command("import", help="Crée ou met à jour l'annuaire depuis un fichier YAML "
                                        "(idempotent ; « - » lit l'entrée standard).")
@click.argument("file")
def import_command(file: str) -> None:
    from forms_service.console import CONSOLE, console_event, console_session
    from forms_service.directory.file import import_directory, parse_directory

    data = parse_directory(_read(file))
    with console_session() as s:
        summary = import_directory(s, data, CONSOLE.actor)
    console_event("annuaire.importe", object_type="annuaire", **summary.as_dict())
    click.echo(f"Annuaire importé : {summary.created} créé(s), {summary.updated} modifié(s), "
               f"{summary.unchanged} inchangé(s).")


@directory_group.command("export", help="Écrit l'annuaire en YAML (même format que l'import).")
@click.argument("file", required=False)
def export_command(file: str | None) -> None:
    from forms_service.console import console_event, console_session
    from forms_service.directory.file import export_directory

    with console_session() as s:
        text = export_directory(s)
    console_event("annuaire.exporte", object_type="annuaire")
    if file and file != "-":
        Path(file).write_text(text, encoding="utf-8")
        click.echo(f"Annuaire écrit dans {file}", err=True)
    else:
        click.echo(text, nl=False)


@directory_group.command("history", help="Historique des modifications de l'annuaire.")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.option("--limit", default=50, show_default=True, type=int)
def history_command(as_json: bool, limit: int) -> None:
    from forms_service.console import console_session
    from forms_service.directory.models import DirectoryChange

    with console_session() as s:
        rows = s.scalars(select(DirectoryChange).order_by(DirectoryChange.id.desc()).limit(limit)).all()
        items = [{"at": r.at.isoformat(), "actor": r.actor, "object_type": r.object_type,
                  "object_code": r.object_code, "change": r.change, "field": r.field,
                  "old": r.old, "new": r.new} for r in rows]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    for i in items:
        what = f" {i['field']} : {i['old'] or '∅'} → {i['new'] or '∅'}" if i["field"] else ""
        click.echo(f"{i['at'][:19]}  {i['actor']}  {i['change']}  {i['object_type']} "
                   f"{i['object_code']}{what}")


commands = [directory_group]
