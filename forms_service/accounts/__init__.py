"""Accounts, roles, API keys and authentication (issue 10, part A).

    from forms_service import accounts
    accounts.init_app(app)          # once, in create_app

Modules: ``models`` (rows), ``passwords`` (argon2), ``keys`` (API keys),
``authn`` (the one before_request that builds ``g.principal``), ``cli``
(``user`` and ``apikey`` commands).
"""

from __future__ import annotations


def init_app(app) -> None:
    from forms_service.accounts.authn import init_app as _init

    _init(app)
