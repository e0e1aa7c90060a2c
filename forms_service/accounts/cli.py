"""``forms-service user ...`` and ``forms-service apikey ...``.

    forms-service user add EMAIL --role ROLE [--role ROLE2] [--territoire T] [--organisme O]
                           [--nom NOM] [--password-stdin] [--update]
    forms-service user list [--json]
    forms-service user disable EMAIL
    forms-service user reset EMAIL          # prints a one-time password link (path)
    forms-service apikey add NAME --scopes render,parse [--user EMAIL] [--territoire T]
    forms-service apikey list [--json]
    forms-service apikey revoke NAME

Errors are ``FormsError``s: the group prints one French line and exits with its code.
"""

from __future__ import annotations

import json
import sys

import click

from forms_service.accounts import keys, users
from forms_service.console import console_event, console_session
from forms_service.errors import BadRequest
from forms_service.principal import ROLES, SCOPES



def _read_password(from_stdin: bool, required: bool) -> str | None:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise BadRequest("Aucun mot de passe sur l'entrée standard", path="password")
        return line
    if not required:
        return None
    if not sys.stdin.isatty():
        raise BadRequest("Pas de terminal pour saisir le mot de passe : utilisez --password-stdin",
                         path="password", rule="terminal_requis")
    return click.prompt("Mot de passe", hide_input=True, confirmation_prompt="Confirmation")


@click.group("user", help="Comptes des personnes (référents, agents, administrateurs...).")
def user_group() -> None:
    pass


@user_group.command("add", help="Crée un compte (ou le modifie avec --update).")
@click.argument("email")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES),
              help="Rôle (répétable).")
@click.option("--territoire", default=None, help="Code du territoire (ex. arrageois).")
@click.option("--organisme", default=None, help="Code de l'organisme.")
@click.option("--nom", "display_name", default=None, help="Nom affiché.")
@click.option("--password-stdin", is_flag=True, help="Lit le mot de passe sur l'entrée standard.")
@click.option("--update", is_flag=True,
              help="Modifie le compte existant (rôles remplacés ; mot de passe inchangé "
                   "sans --password-stdin).")
def user_add(email, roles, territoire, organisme, display_name, password_stdin, update):
    password = _read_password(password_stdin, required=not update)
    with console_session() as s:
        existed = users.get_user(s, email) is not None
        user = users.save_user(s, email, list(roles), password=password, display_name=display_name,
                               territoire=territoire, organisme=organisme, update=update)
        user_id = user.id
    console_event("compte.modifie" if existed else "compte.cree", user_id=user_id,
                 roles=list(roles))
    click.echo(f"Compte {'modifié' if existed else 'créé'} (n° {user_id}).", err=True)


def _echo_rows(rows: list[dict], as_json: bool, columns) -> None:
    """The rows as JSON, or one tab-separated line each (``columns(row)``; empty → « - »)."""
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        click.echo("\t".join(value or "-" for value in columns(r)))


@user_group.command("list", help="Liste les comptes.")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
def user_list(as_json: bool):
    with console_session() as s:
        rows = [users.user_summary(u) for u in users.list_users(s)]
    _echo_rows(rows, as_json, lambda r: (r["email"], ",".join(r["roles"]), r["territoire"],
                                         r["organisme"], "actif" if r["active"] else "désactivé"))


@user_group.command("disable", help="Désactive un compte (ses sessions et clés cessent).")
@click.argument("email")
def user_disable(email: str):
    with console_session() as s:
        user_id = users.disable_user(s, email).id
    console_event("compte.desactive", user_id=user_id)
    click.echo(f"Compte désactivé (n° {user_id}).", err=True)


@user_group.command("reset", help="Affiche un lien à usage unique pour choisir un mot de passe.")
@click.argument("email")
def user_reset(email: str):
    with console_session() as s:
        user = users.require_user(s, email)
        token = users.start_password_reset(s, user)
        user_id = user.id
    console_event("compte.reinitialisation", user_id=user_id)
    click.echo(f"/reinitialisation/{token}")


@click.group("apikey", help="Clés d'API (accès à /api/v1).")
def apikey_group() -> None:
    pass


@apikey_group.command("add", help="Crée une clé et l'affiche, une seule fois, sur la sortie standard.")
@click.argument("name")
@click.option("--scopes", required=True, help=f"Portées séparées par des virgules : {','.join(SCOPES)}.")
@click.option("--user", "user_email", default=None,
              help="La clé agit au nom de ce compte (ses rôles, ses accès).")
@click.option("--territoire", default=None, help="Territoire de la clé.")
def apikey_add(name: str, scopes: str, user_email: str | None, territoire: str | None):
    with console_session() as s:
        row, key = keys.create_key(s, name, scopes, user_email=user_email, territoire=territoire)
        key_name = row.name
    console_event("cle.creee", key=key_name, scopes=keys.parse_scopes(scopes))
    click.echo(key)


@apikey_group.command("list", help="Liste les clés (jamais leur secret).")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
def apikey_list(as_json: bool):
    with console_session() as s:
        rows = [keys.key_summary(k) for k in keys.list_keys(s)]
    _echo_rows(rows, as_json, lambda r: (r["name"], f"fs_{r['prefix']}_…", ",".join(r["scopes"]),
                                         r["user"], r["territoire"],
                                         "révoquée" if r["revoked"] else "active"))


@apikey_group.command("revoke", help="Révoque une clé.")
@click.argument("name")
def apikey_revoke(name: str):
    with console_session() as s:
        key_name = keys.revoke_key(s, name).name
    console_event("cle.revoquee", key=key_name)
    click.echo(f"Clé « {key_name} » révoquée.", err=True)


commands = [user_group, apikey_group]
