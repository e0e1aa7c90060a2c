"""Work to do once a session's outermost transaction commits (Django's ``on_commit``).

    on_commit(s, partial(hand_over, settings, mail_id))   # inside the transaction

- runs once the **outermost** transaction commits: SQLAlchemy also calls its
  ``after_commit`` when a savepoint is released (``begin_nested``: the desk runs each hook in
  one), and the transaction around it may still roll back, or still hold SQLite's write
  lock that the work would wait for;
- dropped when its transaction rolls back: the whole one, or the savepoint it was added in
  (or one around it);
- a failing callback is logged (its name and the error's type) and does not stop the
  others: what it was to do is the sweeps' to catch up (the outbox's, the webhooks').

The e-mails of the circuit (``circuit.mailing``), the structures' copies
(``circuit.structure``) and the webhook events (``webhooks.events``) leave through it.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from forms_service.logging_setup import get_logger

log = get_logger(__name__)

_KEY = "forms_service.on_commit"


def on_commit(session: Session, fn: Callable[[], object]) -> None:
    """Call ``fn()`` once ``session``'s outermost transaction has committed."""
    here = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_KEY, []).append((here, fn))
    if not event.contains(session, "after_commit", _after_commit):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", _after_soft_rollback)


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():   # a savepoint released: the outer one goes on
        return
    for _, fn in session.info.pop(_KEY, []):
        try:
            fn()
        except Exception as exc:
            log.error("on_commit_failed", fn=getattr(getattr(fn, "func", fn), "__name__", "?"),
                      error=type(exc).__name__)


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    if not previous_transaction.nested:
        session.info.pop(_KEY, None)
        return
    session.info[_KEY] = [(t, fn) for t, fn in session.info.get(_KEY, [])
                          if not _within(t, previous_transaction)]


__all__ = ["on_commit"]
