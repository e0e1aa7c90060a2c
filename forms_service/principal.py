"""Who is asking: the one object every access decision and audit event reads.

The authentication step (web session or API key) builds a ``Principal`` once per
request and puts it on ``flask.g.principal``; the access policy
(``forms_service.access``) decides from it alone what the caller may see, and the
audit trail records its ``actor``.

    p = current_principal()
    if p.has_role("referent"): ...
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Every role of the service (issue 10). A person may hold several.
ROLES = ("referent", "agent_slai", "correspondant", "secretariat_ep", "decideur",
         "structure", "administrateur")

#: Every scope an API key may carry.
SCOPES = ("render", "parse", "records", "requests", "beneficiaries", "desk", "admin")


@dataclass(frozen=True)
class Principal:
    #: What the audit trail records: ``"user:<id>"``, ``"key:<name>"`` or ``"anonyme"``.
    actor: str
    user_id: int | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    #: The territory code (``arrageois``...) of a territory-bound role or key, if any.
    territoire: str | None = None
    #: The organisme code of a référent or a structure, if any.
    organisme: str | None = None
    #: An API key's scopes; ``None`` for a web session (the roles decide).
    scopes: frozenset[str] | None = None
    #: True only while the service has no account and no key at all (first start).
    open_mode: bool = False

    def has_role(self, *roles: str) -> bool:
        return self.open_mode or bool(self.roles.intersection(roles))

    def has_scope(self, scope: str) -> bool:
        return self.open_mode or self.scopes is None or scope in self.scopes

    @property
    def is_admin(self) -> bool:
        return self.open_mode or "administrateur" in self.roles


ANONYMOUS = Principal(actor="anonyme")


def current_principal() -> Principal:
    """The current request's principal (set by authentication), else ``ANONYMOUS``."""
    from flask import g, has_request_context

    if has_request_context():
        return getattr(g, "principal", None) or ANONYMOUS
    return ANONYMOUS
