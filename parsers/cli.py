"""``forms-service parse FILE… --json``: read returned forms into records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from forms_service.cli_context import command_settings
from forms_service.config import Settings


@click.command("parse")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON (tableau d'enregistrements).")
@click.option("--in-process", is_flag=True, help="Sans processus isolés (débogage).")
def parse(files: tuple[Path, ...], as_json: bool, in_process: bool) -> None:
    """Lit des formulaires retournés (PDF remplis, PDF, scans TIFF/JPEG/PNG).

    Code de sortie 0 quand chaque fichier a été lu (quel que soit le statut des
    enregistrements), 2 quand un fichier n'a pas pu l'être, 3 quand la base de
    données est indisponible.
    """
    settings = command_settings()   # the group's, read once per invocation
    inputs, out = [], []
    for path in files:
        try:
            inputs.append((str(path), path.read_bytes()))
        except OSError as exc:
            out.append({"file": str(path), "error": {"rule": "fichier_illisible",
                                                     "message": f"Fichier illisible : {exc.strerror}"}})
    out += read(inputs, settings, in_process=in_process)
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=2, default=str))
    else:
        for item in out:
            click.echo(_line(item))
    sys.exit(2 if any("error" in item for item in out) else 0)


def read(inputs: list[tuple[str, bytes]], settings: Settings, *, in_process: bool = False) -> list[dict]:
    """The files read with resources this command owns and closes before it returns.

    The converter pool (for a layout that must be computed) starts LibreOffice only if
    used; the sandbox's workers and the pool are stopped here, not left to the
    interpreter's exit.
    """
    from forms_service.render.pdf import ConverterPool, libreoffice_available

    from .parse import parse_files
    from .sandbox import Sandbox
    from .store import Store

    if not inputs:
        return []
    pool = ConverterPool(size=1, work_dir=settings.var_dir / "lo-parse") if libreoffice_available() else None
    try:
        if in_process:
            store = Store(settings, pool=pool)
            try:
                return parse_files(inputs, store=store)
            finally:
                store.close()
        box = Sandbox(settings, pool=pool, workers=min(len(inputs), 2))
        try:
            return box.parse(inputs)
        finally:
            box.close()
    finally:
        if pool is not None:
            pool.close()


def _line(item: dict) -> str:
    if "error" in item:
        return f"ERREUR {item['file']} : {item['error']['message']}"
    if "page_status" in item:
        return f"PAGE   {item['file']} p. {item['file_page']} : {item.get('message') or item['page_status']}"
    n = sum(1 for f in item["fields"].values() if f["needs_review"])
    return (f"{item['status']:<13} {item['form']:<14} doc {item['document_id'] or '-'}"
            f"  ({n} champ(s) à vérifier, {len(item['validation']['errors'])} remarque(s))")


commands = [parse]
