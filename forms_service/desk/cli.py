"""``forms-service batch submit FILE… [--territoire T] [--wait]``, ``batch show ID [--json]``
and ``forms-service worker`` (a queue consumer; ``serve`` starts one beside the web server).

``batch submit`` takes the same code path as ``POST /api/v1/batches``
(:func:`forms_service.desk.batches.receive`, the same queue), as the console's operator.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import click

from forms_service.cli_context import pass_settings
from forms_service.config import Settings
from forms_service.errors import BadRequest

POLL_SECONDS = 0.5


@click.group("batch", help="Lots de formulaires reçus (bureau du SLAI).")
def batch_group() -> None:
    pass


@batch_group.command("submit", help="Dépose des fichiers (PDF, TIFF, JPEG, PNG) : enregistrés, puis "
                                    "lus en arrière-plan par le service (« forms-service worker »).")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--territoire", help="Code du territoire du lot.")
@click.option("--wait", is_flag=True, help="Attend la fin de la lecture (barre de progression).")
@click.option("--json", "as_json", is_flag=True, help="Affiche le lot en JSON.")
@pass_settings
def submit_command(settings: Settings, files: tuple[str, ...], territoire: str | None, wait: bool,
                   as_json: bool) -> None:
    from forms_service import db
    from forms_service.cli_context import command_app
    from forms_service.console import CONSOLE
    from forms_service.desk import batches

    uploads = []
    for f in files:   # stored by chunks from the file itself, never read whole
        if not Path(f).is_file():
            raise BadRequest(f"Fichier introuvable : {f}", path="files")
        uploads.append(batches.Upload(Path(f).name, Path(f)))
    with command_app().app_context():
        batch = batches.receive(settings, CONSOLE, uploads, territoire, source="cli",
                                database=db.get_database())
        click.echo(f"Lot {batch.id} reçu : {len(uploads)} fichier(s), {batch.pages_total} page(s).", err=True)
        view = _wait(settings, batch.id, batch.pages_total) if wait else _view(batch.id)
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
    else:
        click.echo(str(batch.id))
        if wait:
            _print_summary(view)


def _view(batch_id: int) -> dict:
    from forms_service import db
    from forms_service.console import CONSOLE
    from forms_service.desk import batches

    with db.session() as s:
        return batches.batch_view(s, CONSOLE, batch_id)


def _wait(settings: Settings, batch_id: int, total: int) -> dict:
    """Until the batch is read, with a progress bar. With no consumer alive (no heartbeat
    in the queue's storage: no ``forms-service worker``, no ``serve``), the batch's jobs
    are run here, in this process (the queued ones then find nothing left to do)."""
    from forms_service.desk.queue import get_queue

    queue = get_queue(settings)
    view = _view(batch_id)
    said = False
    with click.progressbar(length=max(total, 1), label="Lecture", file=click.get_text_stream("stderr")) as bar:
        shown = 0
        while True:
            done = view["progress"]["pages_done"]
            bar.update(done - shown)
            shown = done
            if view["status"] == "done":
                return view
            if not queue.consumer_alive():
                if not said:
                    click.echo("\nAucun lecteur de la file d'attente ne tourne (« forms-service worker » ou "
                               "« forms-service serve ») : lecture du lot dans cette commande.", err=True)
                    said = True
                if not _read_here(settings, batch_id):   # what is left is held by another worker
                    time.sleep(POLL_SECONDS)
            else:
                time.sleep(POLL_SECONDS)
            view = _view(batch_id)


def _read_here(settings: Settings, batch_id: int) -> int:
    """The batch's pending jobs, run in this process as a worker runs them; returns how
    many there were."""
    from forms_service import db
    from forms_service.circuit import hooks as circuit_hooks
    from forms_service.desk import batches
    from forms_service.desk.reading import Worker

    circuit_hooks.install(settings)   # as a worker: stored fiches de liaison become requests
    with db.session() as s:
        jobs = batches.read_jobs(s, batch_id)
    worker = Worker.get(settings)
    try:
        for file_ids in jobs:
            worker.read_files(batch_id, file_ids)
    finally:
        worker.close()
        Worker.forget(settings)
    return len(jobs)


def _print_summary(view: dict) -> None:
    s = view["summary"]
    click.echo(f"Formulaires : {s['forms']} (valides {s['valid']}, à revoir {s['needs_review']}, "
               f"invalides {s['invalid']}) ; pages blanches {s['blank']}, inconnues {s['unknown']}, "
               f"doublons {s['duplicates']}, erreurs {s['errors']}")


@batch_group.command("show", help="Affiche un lot : avancement, bilan, pages.")
@click.argument("batch_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@pass_settings
def show_command(settings: Settings, batch_id: int, as_json: bool) -> None:
    from forms_service.cli_context import command_app

    with command_app().app_context():
        view = _view(batch_id)
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    p = view["progress"]
    click.echo(f"Lot {view['id']} ({view['territoire'] or '-'}) : {view['status']}, "
               f"{p['pages_done']}/{p['pages_total']} pages lues")
    _print_summary(view)
    for page in view["pages"]:
        name = view["files"][page["file"]]["name"]
        rec = f" → enregistrement {page['record']}" if page["record"] else ""
        click.echo(f"  {name} p. {page['file_page']} : {page['status']}{rec}")


@batch_group.command("watch", help="Prend les fichiers complets des dossiers surveillés "
                                   "(FORMS_SERVICE_WATCH_DIR/<territoire>/) ; le lecteur le fait chaque minute.")
@pass_settings
def watch_command(settings: Settings) -> None:
    from forms_service import db
    from forms_service.cli_context import command_app
    from forms_service.desk.watch import poll

    if not settings.watch_dir:
        raise BadRequest("Aucun dossier surveillé (FORMS_SERVICE_WATCH_DIR)", path="FORMS_SERVICE_WATCH_DIR")
    with command_app().app_context():
        made = poll(settings, database=db.get_database())
    for batch_id in made:
        click.echo(str(batch_id))


@click.command("worker", help="Lit les lots en file d'attente (Huey ; SQLite par défaut, Redis avec "
                              "QUEUE_URL). Arrêt propre sur SIGINT, immédiat sur SIGTERM.")
@click.option("--threads", type=int, default=None, help="Travaux menés à la fois (défaut : deux par cœur).")
@pass_settings
def worker_command(settings: Settings, threads: int | None) -> None:
    from forms_service import app as _app  # noqa: F401  (the jobs' app: forms_service.worker_apps)
    from forms_service import db
    from forms_service.circuit import ep_deadlines  # noqa: F401  (its periodic job, issue 13)
    from forms_service.desk import watch  # noqa: F401  (its periodic task)
    from forms_service.desk.queue import get_queue
    from forms_service.desk.reading import Worker  # (and its tasks)
    from forms_service.render import jobs  # noqa: F401  (long render batches' task)

    if settings.migrate_on_startup:
        db.upgrade(settings.database_url)
    from forms_service.circuit import hooks as circuit_hooks
    circuit_hooks.install(settings)   # stored fiches de liaison become requests (issue 12)
    queue = get_queue(settings)
    click.echo(f"File d'attente ({queue.kind}) : lecteur démarré.", err=True)
    worker = Worker.get(settings)
    try:
        # its reader processes started now (beside its first beat), not by its first job
        threading.Thread(target=worker.sandbox().start, name="readers-start", daemon=True).start()
        consumer = queue.consumer(threads)
        # until the consumer's own signal handlers are in place (its run()), a SIGTERM
        # unwinds too: the first beat is never left behind by a worker stopped at once
        # (a SIGTERM's default action ends the process without the heartbeat's cleanup)
        signal.signal(signal.SIGTERM, _exit_on_signal)
        with queue.heartbeat(worker.me):   # producers waiting for their work see us alive
            consumer.run()
    finally:
        worker.close()


def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


commands = [batch_group, worker_command]
