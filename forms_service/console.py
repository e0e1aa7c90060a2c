"""What the command line needs to act on the database as the console's operator.

    with console_session() as s: ...     # the schema brought to head first when configured
    CONSOLE_ACTOR                        # the audit actor of command-line changes

Whoever runs ``forms-service`` on the server already holds its files and database:
the commands act as an administrator; the audit trail names them ``console``.
"""

from __future__ import annotations

from forms_service.principal import Principal

CONSOLE_ACTOR = "console"
CONSOLE = Principal(actor=CONSOLE_ACTOR, roles=frozenset({"administrateur"}))


def console_session():
    from forms_service import db
    from forms_service.config import get_settings

    settings = get_settings()
    if settings.migrate_on_startup:
        db.upgrade(settings.database_url)
    return db.session()
