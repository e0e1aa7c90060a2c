"""Every table of the service on one metadata: the core's (``db.models``: template
versions, issued documents, records, audit, idempotency keys) and the people's
(accounts, directory, beneficiaries), the desk's (batches, their files and pages, record
pages and crops, review decisions), the circuit's (requests, their types and avis, the
allowed transitions) and the référent pages' (drafts, digest preferences), imported here so
that Alembic, the mappers and ``create_all`` always see them all. ``forms_service.db``
imports it."""

from __future__ import annotations

from forms_service.accounts import models as accounts_models  # noqa: F401
from forms_service.beneficiaries import models as beneficiaries_models  # noqa: F401
from forms_service.circuit import models as circuit_models  # noqa: F401
from forms_service.circuit import ep_models  # noqa: F401  (issue 13: the EP's sessions)
from forms_service.circuit import outbox_models  # noqa: F401  (the e-mails' outbox)
from forms_service.circuit import structure_models  # noqa: F401  (issue 13)
from forms_service.db.models import Base
from forms_service.desk import models as desk_models  # noqa: F401
from forms_service.desk import review_models  # noqa: F401
from forms_service.directory import models as directory_models  # noqa: F401
from forms_service.render import job_models as render_job_models  # noqa: F401  (issue 11)
from forms_service import drafts as drafts_models  # noqa: F401  (issue 14)
from forms_service import preferences as preferences_models  # noqa: F401  (issue 14)
from forms_service.webhooks import models as webhooks_models  # noqa: F401  (issue 13)

metadata = Base.metadata
