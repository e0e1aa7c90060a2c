"""``forms-service parse FILE… --json``: read returned forms into records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command("parse")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON (tableau d'enregistrements).")
@click.option("--in-process", is_flag=True, help="Sans processus isolés (débogage).")
def parse(files: tuple[Path, ...], as_json: bool, in_process: bool) -> None:
    """Lit des formulaires retournés (PDF remplis, PDF, scans TIFF/JPEG/PNG).

    Code de sortie 0 quand chaque fichier a été lu (quel que soit le statut des
    enregistrements), 2 quand un fichier n'a pas pu l'être.
    """
    from .parse import parse_files
    from .sandbox import Sandbox

    inputs, out = [], []
    for path in files:
        try:
            inputs.append((str(path), path.read_bytes()))
        except OSError as exc:
            out.append({"file": str(path), "error": {"rule": "fichier_illisible",
                                                     "message": f"Fichier illisible : {exc.strerror}"}})
    if in_process:
        out += parse_files(inputs)
    else:
        from forms_service.cli_context import command_settings
        box = Sandbox(workers=min(len(inputs), 2) or 1, settings=command_settings())
        try:
            out += box.parse(inputs)
        finally:
            box.close()
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=2, default=str))
    else:
        for item in out:
            if "error" in item:
                click.echo(f"ERREUR {item['file']} : {item['error']['message']}")
            else:
                n = sum(1 for f in item["fields"].values() if f["needs_review"])
                click.echo(f"{item['status']:<13} {item['form']:<14} doc {item['document_id'] or '-'}"
                           f"  ({n} champ(s) à vérifier, {len(item['validation']['errors'])} remarque(s))")
    sys.exit(2 if any("error" in item for item in out) else 0)


commands = [parse]
