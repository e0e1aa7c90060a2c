"""``forms-service beneficiaries import FILE [--json]``.

Exit code 0 when every line was taken, 1 when some were refused (the others are
imported all the same), 2 when the file itself cannot be read.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from forms_service.errors import BadRequest


@click.group("beneficiaries", help="Bénéficiaires du RSA et leur référent.")
def beneficiaries_group() -> None:
    pass


@beneficiaries_group.command("import", help="Importe des bénéficiaires (CSV ou JSON), idempotent "
                                            "sur le numéro CAF et la date de naissance.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Compte rendu complet en JSON.")
@click.pass_context
def import_command(ctx: click.Context, file: str, as_json: bool) -> None:
    from forms_service.beneficiaries.importer import import_beneficiaries
    from forms_service.console import console_event, console_session

    try:
        content = Path(file).read_bytes()
    except FileNotFoundError:
        raise BadRequest(f"Fichier introuvable : {file}", path="file") from None
    with console_session() as s:
        report = import_beneficiaries(s, content, Path(file).name)
    summary = {k: v for k, v in report.as_dict().items() if k != "lines"}
    console_event("beneficiaires.importes", object_type="beneficiaire",
                 created_ids=report.ids("created"), updated_ids=report.ids("updated"), **summary)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(f"{summary['created']} créé(s), {summary['updated']} mis à jour, "
                   f"{summary['unchanged']} inchangé(s), {summary['refused']} refusé(s).")
        for line in report.lines:
            if line.status == "refused":
                reasons = " ; ".join(e["message"] for e in line.errors)
                click.echo(f"  ligne {line.line} : {reasons}", err=True)
    ctx.exit(1 if summary["refused"] else 0)


commands = [beneficiaries_group]
