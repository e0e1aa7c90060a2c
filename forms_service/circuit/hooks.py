"""The circuit on the desk's hooks: a stored fiche de liaison record becomes a request (or
adds to its document's); one still to review, or whose beneficiary is unknown, waits and is
routed when the desk is done with it (``on_record_reviewed``).

``install(settings)`` registers the hooks once per process (``create_app`` calls it; a
desk worker process calls it with its settings). The hooks run inside the desk's
transaction; their e-mails leave once it commits.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

from forms_service.circuit import mailing, service
from forms_service.config import Settings
from forms_service.logging_setup import get_logger
from forms_service.principal import Principal

log = get_logger(__name__)

#: The desk acts for the département: it sees every beneficiary (like a machine key).
DESK = Principal(actor="systeme:guichet", scopes=frozenset())
PENDING_KEY = "forms_service.circuit.mails"

_settings: list[Settings] = []


def _settings_now() -> Settings | None:
    from flask import has_app_context

    if has_app_context():
        from forms_service.config import current_settings
        return current_settings()
    return _settings[-1] if _settings else None


def _after_commit(session: Session) -> None:
    mails = session.info.pop(PENDING_KEY, [])
    settings = _settings_now()
    if mails and settings is not None:
        mailing.send_all(settings, mails)


def _on_record(session: Session, record) -> None:
    outcome = service.submit_record(session, DESK, record)
    if outcome is None:
        return
    pending = session.info.setdefault(PENDING_KEY, [])
    if not pending:
        event.listen(session, "after_commit", _after_commit, once=True)
    pending.extend(outcome.mails)
    log.info("demande_from_record", record_id=record.id, demande_id=outcome.demande.id,
             added=outcome.added_to_existing)


def on_record_stored(session: Session, record) -> None:
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

    _settings.append(settings)
    from forms_service.circuit import decision   # issue 13: a decided action CG → its structure
    decision.install()
    if on_record_stored not in batches.on_record_stored:
        batches.on_record_stored.append(on_record_stored)
    if on_record_reviewed not in batches.on_record_reviewed:
        batches.on_record_reviewed.append(on_record_reviewed)


__all__ = ["install", "on_record_stored", "on_record_reviewed", "DESK"]
