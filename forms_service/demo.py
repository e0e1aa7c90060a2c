"""``forms-service demo load``: the demo directory, accounts (one per role) and beneficiaries.

Reads ``samples/demo/`` (``annuaire.yaml``, ``comptes.yaml``, ``beneficiaires.json``): the
nine Pas-de-Calais territories with fictional people only. Idempotent: loading twice
updates in place. Prints the demo accounts and their passwords (demo only).
"""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from forms_service.errors import BadRequest

DEMO_DIR = Path(__file__).resolve().parent.parent / "samples" / "demo"


def load_demo(folder: Path = DEMO_DIR) -> dict:
    """Load the three files; returns ``{"directory", "accounts", "beneficiaries"}`` summaries."""
    from forms_service.accounts.users import save_user
    from forms_service.beneficiaries.importer import import_beneficiaries
    from forms_service.console import CONSOLE, console_event, console_session
    from forms_service.directory.file import import_directory, parse_directory

    try:
        directory = parse_directory((folder / "annuaire.yaml").read_text(encoding="utf-8"))
        accounts = yaml.safe_load((folder / "comptes.yaml").read_text(encoding="utf-8"))["comptes"]
        beneficiaries = (folder / "beneficiaires.json").read_bytes()
    except FileNotFoundError as exc:
        raise BadRequest(f"Fichier de démonstration introuvable : {exc.filename}") from None
    with console_session() as s:
        summary = import_directory(s, directory, CONSOLE.actor)
        for a in accounts:
            save_user(s, a["email"], a["roles"], password=a["mot_de_passe"],
                      display_name=a.get("nom"), territoire=a.get("territoire"),
                      organisme=a.get("organisme"), update=True)
        s.flush()
        report = import_beneficiaries(s, beneficiaries, "beneficiaires.json")
    console_event("demo.chargee", object_type="annuaire", **summary.as_dict(),
                 accounts=len(accounts), beneficiaries=report.count("created") + report.count("updated"))
    return {"directory": summary.as_dict(), "accounts": accounts,
            "beneficiaries": {k: v for k, v in report.as_dict().items() if k != "lines"}}


@click.group("demo", help="Données de démonstration (personnes fictives).")
def demo_group() -> None:
    pass


@demo_group.command("load", help="Charge l'annuaire, les comptes et les bénéficiaires de "
                                 "démonstration (samples/demo/) et affiche les comptes.")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=DEMO_DIR, show_default=True)
def load_command(folder: Path) -> None:
    result = load_demo(folder)
    d, b = result["directory"], result["beneficiaries"]
    click.echo(f"Annuaire : {d['created']} créé(s), {d['updated']} modifié(s), "
               f"{d['unchanged']} inchangé(s).")
    click.echo(f"Bénéficiaires : {b['created']} créé(s), {b['updated']} mis à jour, "
               f"{b['unchanged']} inchangé(s), {b['refused']} refusé(s).")
    click.echo("Comptes de démonstration (mots de passe de démonstration) :")
    for a in result["accounts"]:
        where = a.get("territoire") or a.get("organisme") or ""
        click.echo(f"  {a['email']:<40} {a['mot_de_passe']:<24} {', '.join(a['roles'])}"
                   f"{' — ' + where if where else ''}")


commands = [demo_group]
