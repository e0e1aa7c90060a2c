"""``forms-service ep echeances [--date AAAA-MM-JJ] [--json]``: the EP's deadlines, and
« réputé rendu » recorded for every request past its month (the same run as the task
queue's periodic job, :func:`forms_service.circuit.ep_deadlines.deem_given`)."""

from __future__ import annotations

import datetime as dt
import json

import click

from forms_service.cli_context import pass_settings
from forms_service.config import Settings
from forms_service.errors import BadRequest


@click.group("ep", help="Équipe pluridisciplinaire : séances et délais d'avis.")
def ep_group() -> None:
    pass


@ep_group.command("echeances", help="Enregistre « avis réputé rendu » pour chaque demande dont le "
                                    "délai d'un mois est passé, puis affiche les délais en cours.")
@click.option("--date", "day", help="Le jour à prendre pour aujourd'hui (AAAA-MM-JJ ; défaut : "
                                    "l'horloge du service).")
@click.option("--json", "as_json", is_flag=True, help="Affiche le résultat en JSON.")
@pass_settings
def echeances_command(settings: Settings, day: str | None, as_json: bool) -> None:
    from forms_service import clock, db
    from forms_service.circuit import ep_deadlines
    from forms_service.cli_context import command_app
    from forms_service.console import CONSOLE

    try:
        today = dt.date.fromisoformat(day) if day else clock.from_settings(settings).today()
    except ValueError:
        raise BadRequest(f"Date illisible : {day} (AAAA-MM-JJ)", path="date") from None
    with command_app().app_context():
        ids = ep_deadlines.deem_given(settings, today)
        with db.session() as s:
            pending = ep_deadlines.deadlines(s, CONSOLE, today)
    if as_json:
        click.echo(json.dumps({"date": today.isoformat(), "reputes_rendus": ids,
                               "en_cours": [{"demande": e.demande_id, "echeance": e.deadline.isoformat(),
                                             "etat": e.status} for e in pending]},
                              ensure_ascii=False, indent=2))
        return
    click.echo(f"{len(ids)} avis réputé(s) rendu(s) au {today:%d/%m/%Y}"
               + (f" : demandes n° {', '.join(map(str, ids))}" if ids else "") + ".")
    for e in pending:
        click.echo(f"demande n° {e.demande_id} : avis attendu le {e.deadline:%d/%m/%Y} ({e.label})")


commands = [ep_group]
