"""What the command line needs to act on the database as the console's operator.

    with console_session() as s: ...     # inside the command's app (migrated when configured)
    CONSOLE_ACTOR                        # the audit actor of command-line changes

Whoever runs ``forms-service`` on the server already holds its files and database:
the commands act as an administrator; the audit trail names them ``console``.
"""

from __future__ import annotations

from contextlib import contextmanager

from forms_service.principal import Principal

CONSOLE_ACTOR = "console"
CONSOLE = Principal(actor=CONSOLE_ACTOR, roles=frozenset({"administrateur"}))


@contextmanager
def console_session():
    """A session on the invocation's database, inside the command's app (built from the
    settings the CLI group read; the schema brought to head first when configured)."""
    from forms_service import db
    from forms_service.cli_context import command_app

    with command_app().app_context(), db.session() as s:
        yield s


def console_event(action: str, **detail) -> None:
    """An audit event of the console's operator (``CONSOLE_ACTOR``)."""
    from forms_service.audit import record_event
    from forms_service.cli_context import command_app

    with command_app().app_context():
        record_event(CONSOLE, action, **detail)
