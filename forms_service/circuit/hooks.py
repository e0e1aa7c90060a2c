"""The circuit on the desk's hooks: a stored fiche de liaison record becomes a request (or
adds to its document's); one still to review, or whose beneficiary is unknown, waits and is
routed when the desk is done with it (``on_record_reviewed``).

``install(settings)`` registers the hooks once per process (``create_app`` calls it; a
desk worker process calls it with its settings). The hooks run inside the desk's
transaction; their e-mails are written in it and leave once it commits
(``circuit.mailing``).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from forms_service.circuit import in_force, mailing, service
from forms_service.circuit.in_force import settings_now
from forms_service.config import Settings
from forms_service.logging_setup import get_logger
from forms_service.principal import Principal

log = get_logger(__name__)

#: The desk acts for the département: it sees every beneficiary (like a machine key).
DESK = Principal(actor="systeme:guichet", scopes=frozenset())


def _on_record(session: Session, record) -> None:
    outcome = service.submit_record(session, DESK, record)
    if outcome is None:
        return
    mailing.stage(session, settings_now(), outcome.mails)   # in the desk's transaction
    log.info("demande_from_record", record_id=record.id, demande_id=outcome.demande.id,
             added=outcome.added_to_existing)


def on_record_stored(session: Session, record) -> None:
    from forms_service.circuit import lone_pages

    lone_pages.settle(session, record)   # a page sent back alone: not its missing pages to review
    _on_record(session, record)


def on_record_reviewed(session: Session, record) -> None:
    from sqlalchemy import select

    from forms_service.circuit.models import Demande

    # reviewed after it waited: route it now (once: a request already made from it is kept)
    if session.scalars(select(Demande.id).where(Demande.record_id == record.id)).first():
        return
    _on_record(session, record)


def install(settings: Settings) -> None:
    from forms_service.desk import batches

    from forms_service import clock
    from forms_service.webhooks import events as webhook_events, sweep as webhook_sweep

    in_force.install(settings)
    clock.install(settings)        # a worker's "now" (an app's is its own)
    webhook_events.install(settings_now)   # every change of a request's state → a webhook (issue 13)
    webhook_sweep.register()               # and the events that never reached the queue
    mailing.register()                     # the e-mails that never reached it, or were lost
    from forms_service import digest
    digest.register()                      # the référents' daily e-mail of échéances
    from forms_service.circuit import decision   # issue 13: a decided action CG → its structure
    decision.install()
    if on_record_stored not in batches.on_record_stored:
        batches.on_record_stored.append(on_record_stored)
    if on_record_reviewed not in batches.on_record_reviewed:
        batches.on_record_reviewed.append(on_record_reviewed)


__all__ = ["install", "on_record_stored", "on_record_reviewed", "DESK", "settings_now"]
