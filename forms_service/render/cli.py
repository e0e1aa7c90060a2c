"""``forms-service render`` and ``forms-service layout``.

    forms-service render fiche-liaison --data fiche.json --format pdf -o fiche.pdf
    forms-service render annexe-7 --format pdf -o vierges/           # blank form, into a folder
    forms-service render fiche-liaison --data lot.jsonl --format pdf -o lot.zip    # a batch
    forms-service layout fiche-liaison --json

The commands use the :class:`~forms_service.render.service.RenderService` of an app on
the invocation's settings (the same code path as the API: validation, storage, database
record, audit trail); the app, and the LibreOffice it started, stop when the command
ends (``cli_context.command_app``). Exit codes (``cli.FormsGroup``): 0 done, 1 invalid
data (each path on stderr), 2 unreadable or unknown input, 3 LibreOffice missing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from forms_service.cli_context import command_app
from forms_service.console import CONSOLE_ACTOR
from forms_service.errors import BadRequest

ACTOR = CONSOLE_ACTOR   # the one audit actor of the command line


def _service():
    """The RenderService of the invocation's app."""
    from forms_service.render.service import get_service

    return get_service(command_app())


def _read_text(file: str) -> tuple[str, str]:
    if file == "-":
        return sys.stdin.read(), "entrée standard"
    path = Path(file)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        raise BadRequest(f"Fichier introuvable : {path}", path="data") from None
    except IsADirectoryError:
        raise BadRequest(f"{path} est un dossier, pas un fichier JSON", path="data") from None
    except UnicodeDecodeError:
        raise BadRequest(f"Le fichier {path} n'est pas un texte UTF-8", path="data") from None
    except OSError as exc:
        raise BadRequest(f"Impossible de lire le fichier {path} ({exc.strerror})",
                         path="data") from None


def read_data(file: str | None) -> tuple[dict | list | None, bool]:
    """``(data, is_batch)`` from ``--data``: a JSON object (one document), a JSON array
    or JSON lines (``.jsonl``/``.ndjson``, or several lines of objects) for a batch."""
    if file is None:
        return None, False
    text, name = _read_text(file)
    jsonl = name.endswith((".jsonl", ".ndjson"))
    if not jsonl:
        try:
            data = json.loads(text) if text.strip() else None
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":
                raise BadRequest(f"{name} n'est pas du JSON valide (ligne {exc.lineno}, "
                                 f"colonne {exc.colno})", path="data") from None
            jsonl = True  # several JSON values: JSON lines
        else:
            if data is None or isinstance(data, dict):
                return data, False
            if isinstance(data, list):
                return data, True
            raise BadRequest(f"{name} doit contenir un objet JSON (ou une liste, ou des lignes "
                             f"JSON pour un lot)", path="data")
    items: list[Any] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise BadRequest(f"{name}, ligne {lineno} : pas du JSON valide (colonne {exc.colno})",
                             path="data") from None
    return items, True


def _is_dir_target(out: str) -> bool:
    return out.endswith(("/", "\\")) or Path(out).is_dir()


def _write(path: Path, content: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    except OSError as exc:
        raise BadRequest(f"Impossible d'écrire {path} ({exc.strerror})", path="output") from None


def _warn_findings(findings, prefix: str = "") -> None:
    for p in findings:
        level = "Erreur (non bloquante)" if p.severity == "error" else "Avertissement"
        where = f"{p.path} : " if p.path else ""
        click.echo(f"{level} : {prefix}{where}{p.message} [{p.rule}]", err=True)


@click.command("render", help="Produit un document (DOCX ou PDF) à partir de données JSON. "
                              "Sans --data : le formulaire vierge. Un fichier de lignes JSON "
                              "(ou une liste) produit un lot dans un dossier (-o dossier/) ou une "
                              "archive (-o lot.zip). Code de sortie : 0 fait, 1 données invalides, "
                              "2 entrée illisible ou formulaire inconnu, 3 LibreOffice absent.")
@click.argument("form")
@click.option("--data", "data_file", metavar="FICHIER.json",
              help="Données : objet JSON, ou lignes JSON / liste pour un lot (« - » : entrée standard).")
@click.option("--format", "fmt", type=click.Choice(["docx", "pdf"]), default="pdf",
              show_default=True)
@click.option("--fillable", is_flag=True, help="PDF remplissable (champs pré-remplis).")
@click.option("--strict", is_flag=True,
              help="Refuser les données qui enfreignent une règle de niveau « error ».")
@click.option("-o", "--output", metavar="SORTIE",
              help="Fichier, dossier (se terminant par /) ou archive .zip pour un lot. "
                   "Par défaut : le nom du document, dans le dossier courant.")
def render_command(form: str, data_file: str | None, fmt: str, fillable: bool, strict: bool,
                   output: str | None) -> None:
    data, is_batch = read_data(data_file)
    if is_batch:
        _render_batch(form, data, fmt, fillable, strict, output)
        return
    service = _service()
    doc = service.render(form, data, fmt=fmt, fillable=fillable, strict=strict, actor=ACTOR)
    if output is None:
        target = Path(doc.filename)
    elif _is_dir_target(output):
        target = Path(output) / doc.filename
    else:
        target = Path(output)
    _write(target, doc.content)
    _warn_findings(doc.findings)
    click.echo(str(target))


def _render_batch(form: str, items: list, fmt: str, fillable: bool, strict: bool,
                  output: str | None) -> None:
    from forms_service.render.service import batch_entries, batch_findings, batch_zip

    if not output:
        raise BadRequest("Pour un lot, indiquez -o dossier/ ou -o lot.zip", path="output")
    as_zip = output.lower().endswith(".zip") and not _is_dir_target(output)
    service = _service()
    # Every item is checked before the first is rendered (one bad item: exit 1, nothing written).
    with click.progressbar(length=len(items) if isinstance(items, list) else 0,
                           label=f"{form} ({fmt})", file=sys.stderr,
                           show_pos=True) as bar:
        docs = service.render_batch(form, items, fmt=fmt, fillable=fillable, strict=strict,
                                    actor=ACTOR, on_done=lambda _doc: bar.update(1))
    if as_zip:
        _write(Path(output), batch_zip(docs))
    else:
        folder = Path(output)
        for name, doc in batch_entries(docs):
            _write(folder / name, doc.content)
        _write(folder / "findings.json",
               json.dumps(batch_findings(docs), ensure_ascii=False, indent=2).encode("utf-8"))
    for i, doc in enumerate(docs):
        _warn_findings(doc.findings, prefix=f"items.{i} : ")
    click.echo(f"{output} ({len(docs)} documents)")


@click.command("layout", help="Carte de mise en page du formulaire vierge (cases, zones de texte "
                              "et de signature, en points depuis le coin haut gauche).")
@click.argument("form")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON (la carte complète).")
def layout_command(form: str, as_json: bool) -> None:
    layout = _service().blank_layout(form)
    if as_json:
        click.echo(json.dumps(layout, ensure_ascii=False, indent=2))
        return
    click.echo(f"{layout.get('form', form)} · modèle {layout.get('template_version', '?')}")
    for page in layout.get("pages", []):
        n = page.get("number")
        boxes = sum(1 for b in layout.get("boxes", []) if b.get("page") == n)
        zones = sum(1 for z in layout.get("zones", []) if z.get("page") == n)
        click.echo(f"  page {n} : {boxes} cases, {zones} zones")


commands = [render_command, layout_command]
