"""Every table of the service on one metadata: the core's (``db.models``: template
versions, issued documents, records, audit, idempotency keys) and the people's
(accounts, directory, beneficiaries), imported here so that Alembic, the mappers and
``create_all`` always see them all. ``forms_service.db`` imports it."""

from __future__ import annotations

from forms_service.accounts import models as accounts_models  # noqa: F401
from forms_service.beneficiaries import models as beneficiaries_models  # noqa: F401
from forms_service.db.models import Base
from forms_service.directory import models as directory_models  # noqa: F401

metadata = Base.metadata
