"""The ``forms-service`` command.

Exit codes: 0 success; 1 data invalid (``validate``); 2 unusable input (unknown
form, reference list, unreadable file); 3 missing component. They come from the
exception's ``exit_code`` in one place, ``FormsGroup.invoke``: commands just
raise a :class:`FormsError`, the group prints its French message on stderr.

Settings are read once per invocation, by the group, and kept as the click
context's object: commands take them with ``@pass_settings`` and build an app on
them with ``command_app()`` (``forms_service.cli_context``). An invalid setting
is one French line and exit 2.

Other packages add commands without editing this file beyond one line: list
the module in ``COMMAND_MODULES``. Each such module is imported the first time
an unknown command name (or ``--help``) is looked up, and defines ``commands``,
a list of ``click.Command`` objects.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from forms_service.catalogue import catalogue
from forms_service.cli_context import APP_CONFIG_KEY, command_settings, pass_settings
from forms_service.config import Settings, SettingsError
from forms_service.errors import BadRequest, FormsError
from forms_service.logging_setup import configure_logging

#: Modules that contribute commands (``commands = [...]``).
COMMAND_MODULES = [
    "forms_service.render.templates_cli",
    "forms_service.render.cli",
    "parsers.cli",
    "forms_service.accounts.cli",
    "forms_service.directory.cli",
    "forms_service.beneficiaries.cli",
    "forms_service.demo",
    "forms_service.desk.cli",
    "forms_service.circuit.ep_cli",
]


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def _report_error(err: FormsError) -> None:
    click.echo(f"Erreur : {err.message}", err=True)
    for p in err.problems:
        if p.message != err.message:
            where = f"{p.path} : " if p.path else ""
            click.echo(f"  - {where}{p.message} [{p.rule}]", err=True)


class FormsGroup(click.Group):
    """A click group that maps :class:`FormsError` to its exit code and loads
    the commands of ``COMMAND_MODULES`` lazily."""

    _plugins_loaded = False

    def invoke(self, ctx: click.Context):
        try:
            try:
                return super().invoke(ctx)
            except SettingsError as exc:
                raise BadRequest(str(exc), path="configuration",
                                 rule="configuration_invalide") from None
        except FormsError as err:
            _report_error(err)
            ctx.exit(err.exit_code)

    def _load_plugins(self) -> None:
        if FormsGroup._plugins_loaded:
            return
        FormsGroup._plugins_loaded = True
        for name in COMMAND_MODULES:
            module = importlib.import_module(name)
            for command in module.commands:
                self.add_command(command)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugins()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str):
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._load_plugins()
            command = super().get_command(ctx, cmd_name)
        return command


#: Commands whose log lines are the output (the others keep stderr for the user's messages).
SERVING_COMMANDS = {"serve"}


@click.group(cls=FormsGroup, help="Service des formulaires RSA.")
@click.version_option(package_name="forms-service")
@click.pass_context
def main(ctx: click.Context) -> None:
    # A caller may hand Flask configuration for the command's app as the object
    # (tests: ``runner.invoke(main, args, obj={"PDF_POOL": pool})``).
    if isinstance(ctx.obj, dict):
        ctx.meta[APP_CONFIG_KEY] = dict(ctx.obj)
    overrides = {}
    if ctx.invoked_subcommand not in SERVING_COMMANDS and not os.environ.get(
            "FORMS_SERVICE_LOG_LEVEL"):
        overrides["log_level"] = "WARNING"
    ctx.obj = Settings.from_env(overrides)
    configure_logging(ctx.obj.log_level)


@main.command("forms", help="Liste les formulaires et listes de référence.")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
def forms_command(as_json: bool) -> None:
    forms = [fd.summary() for fd in catalogue.forms()]
    if as_json:
        _echo_json(forms)
        return
    width = max((len(f["id"]) for f in forms), default=2)
    for f in forms:
        kind = "formulaire" if f["kind"] == "form" else "référence"
        pages = f"{f['pages']} p." if f["pages"] else ""
        click.echo(f"{f['id']:<{width}}  {kind:<10}  {pages:>5}  {f['title']}")


@main.command("schema", help="Affiche le JSON Schema des données d'un formulaire "
                              "(--record : celui des enregistrements lus).")
@click.argument("form")
@click.option("--record", is_flag=True, help="Schéma d'un formulaire lu (scan, PDF rempli).")
def schema_command(form: str, record: bool) -> None:
    fd = catalogue.get(form)
    if record:
        from parsers.record import record_schema
        fd.json_schema()   # a reference list has no record either (exit 2)
        _echo_json(record_schema(fd))
        return
    _echo_json(fd.json_schema())


def _read_json_object(file: str) -> dict:
    if file == "-":
        text, name = sys.stdin.read(), "entrée standard"
    else:
        path = Path(file)
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BadRequest(f"Fichier introuvable : {name}", path="file") from None
        except UnicodeDecodeError:
            raise BadRequest(f"Le fichier {name} n'est pas un texte UTF-8", path="file") from None
        except OSError as exc:
            raise BadRequest(f"Impossible de lire le fichier {name} ({exc.strerror})",
                             path="file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"{name} n'est pas du JSON valide (ligne {exc.lineno}, colonne {exc.colno})",
                         path="file") from None
    if not isinstance(data, dict):
        raise BadRequest(f"{name} doit contenir un objet JSON", path="file")
    return data


@main.command("validate", help="Valide un fichier JSON pour un formulaire. "
                               "Code de sortie : 0 valide, 1 invalide, 2 illisible.")
@click.argument("form")
@click.argument("file")
@click.pass_context
def validate_command(ctx: click.Context, form: str, file: str) -> None:
    from forms_service.rules.programme import Programme
    from forms_service.validation import validate

    programme = Programme.from_settings(command_settings())
    fd = programme.catalogue.get(form)
    data = _read_json_object(file)
    report = validate(fd, data, programme=programme)
    _echo_json(report.as_dict())
    ctx.exit(0 if report.valid else 1)


@main.command("rules", help="Liste les règles de contrôle (code, formulaire, gravité, message).")
@click.argument("form", required=False)
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
def rules_command(form: str | None, as_json: bool) -> None:
    forms = [catalogue.get(form)] if form else [fd for fd in catalogue.forms() if fd.kind == "form"]
    rules = [r.as_dict() for fd in forms for r in fd.rules()]
    if as_json:
        _echo_json(rules)
        return
    for r in rules:
        click.echo(f"{r['code']}\t{r['form']}\t{r['severity']}\t{r['message']}")


class _Stop(SystemExit):
    """Raised in the main thread by SIGTERM/SIGINT to leave the server's loop (a
    ``SystemExit``: cheroot's loop logs and goes on after any ``Exception``)."""


def web_server(app, host: str, port: int, threads: int):
    """The HTTP server of ``serve``: cheroot, which hands a request's body to the
    application as it arrives (waitress buffered it whole in a temp file first): a
    scanned batch of hundreds of MB is stored and read while it is still being sent, and
    written once (issue 11's desk bench, ``docs/desk.md``)."""
    from cheroot.server import HTTPConnection
    from cheroot.wsgi import Server

    class Connection(HTTPConnection):
        def __init__(self, server, sock, makefile=None):
            super().__init__(server, sock, makefile=_socket_file)

    server = Server((host, port), app, numthreads=threads, server_name="forms-service",
                    timeout=60, shutdown_timeout=5)
    server.ConnectionClass = Connection
    server.version = "forms-service"   # the Server header
    return server


def _socket_file(sock, mode="r", bufsize=None):
    """cheroot's socket files, its reader doing large reads straight into one buffer."""
    import io

    from cheroot.makefile import StreamReader, StreamWriter

    class BodyReader(StreamReader):
        """A read of 64 KiB or more (a request body's, by the desk's receiver) fills one
        buffer from the socket, instead of cheroot's pure-Python buffered reader, which
        allocates the size asked at each receive and copies every byte four times more."""

        def read(self, size=-1):
            if size is None or size < 64 * 1024:
                return super().read(size)
            with self._read_lock:
                out = bytearray(size)
                got = len(self._read_buf) - self._read_pos   # what the headers' reads left
                got = min(got, size)
                out[:got] = self._read_buf[self._read_pos:self._read_pos + got]
                self._read_pos += got
                view = memoryview(out)
                while got < size:
                    n = self.raw.readinto(view[got:])
                    if not n:
                        break
                    got += n
                view.release()
                del out[got:]
            self.bytes_read += got
            return bytes(out)

    bufsize = io.DEFAULT_BUFFER_SIZE if bufsize is None else bufsize
    return BodyReader(sock, mode, bufsize) if "r" in mode else StreamWriter(sock, mode, bufsize)


@main.command("serve", help="Démarre le service web (arrêt propre sur SIGTERM ou Ctrl-C : "
                            "LibreOffice et les processus de lecture sont arrêtés).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Sans lecteur de file d'attente à côté (« forms-service worker »).")
@pass_settings
def serve_command(settings: Settings, host: str, port: int, threads: int, no_worker: bool) -> None:
    from forms_service.app import create_app
    from forms_service.desk.worker_process import WorkerProcess

    app = create_app(settings=settings)
    worker = None if no_worker else WorkerProcess.start()
    server = web_server(app, host, port, threads)

    def stop(signum, _frame):
        raise _Stop(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    shown = f"[{host}]" if ":" in host else host
    try:
        server.prepare()
        click.echo(f"Service des formulaires RSA : http://{shown}:{port}/", err=True)
        server.serve()
    except _Stop:
        click.echo("Arrêt du service.", err=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_IGN)   # a second signal does not cut the shutdown
        server.stop()   # requests under way: shutdown_timeout
        if worker is not None:
            worker.stop()
        app.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@main.group("db", help="Base de données.")
def db_group() -> None:
    pass


@db_group.command("upgrade", help="Applique les migrations (jusqu'à la dernière par défaut).")
@click.option("--revision", default="head", show_default=True)
@pass_settings
def db_upgrade(settings: Settings, revision: str) -> None:
    from forms_service import db

    db.upgrade(settings.database_url, revision)
    click.echo(f"Base de données migrée ({revision}).", err=True)


@db_group.command("revision", help="Crée une migration (développeurs).")
@click.option("-m", "--message", required=True)
@click.option("--autogenerate", is_flag=True)
@pass_settings
def db_revision(settings: Settings, message: str, autogenerate: bool) -> None:
    from alembic import command

    from forms_service import db

    command.revision(db.alembic_config(settings.database_url), message=message,
                     autogenerate=autogenerate)


if __name__ == "__main__":  # pragma: no cover
    main()
