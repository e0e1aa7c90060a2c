"""The access policy: who may see which beneficiary, issued document and record.

Every read of a beneficiary, an issued document, a record, a page image or a file
goes through this module, for the web pages and the API alike; it decides from the
caller's :class:`~forms_service.principal.Principal` alone.

    stmt = visible_beneficiaries(principal)          # a Select, to filter and page
    b = get_beneficiary(principal, 42)               # NotFound (404) if not visible
    if can_see_document(principal, doc_id): ...
    doc = get_document(principal, doc_id)            # NotFound (404) if not visible

Rules (issue 10):

- ``administrateur`` (and the open first-start mode) sees everything;
- ``referent`` sees the beneficiaries they are named for;
- ``agent_slai``, ``correspondant``, ``secretariat_ep``, ``decideur`` see their
  territory's beneficiaries;
- ``structure`` sees the fiche de liaison requests the Président sent to its organisme
  (issue 13; ``circuit.structure`` shows it the parts of the fiche a structure may see);
- a fiche de liaison's request (``circuit``) is visible with its beneficiary;
- a person holding several roles sees the union;
- an API key without a user (a machine: the département's system) sees everything,
  or its territory's only when it has one; a key made for a user acts as that user
  (the principal carries the user's roles), also limited to the key's territory if any.

An issued document or a record is visible with its beneficiary; one that concerns no
beneficiary is visible to administrators, unrestricted machine keys and its author
(the ``created_by`` of the document). What cannot be seen answers 404, exactly as
what does not exist: its existence is not revealed.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true
from sqlalchemy.orm import Session

from forms_service import db
from forms_service.beneficiaries.models import Beneficiary
from forms_service.errors import NotFound
from forms_service.principal import Principal

TERRITORY_ROLES = ("agent_slai", "correspondant", "secretariat_ep", "decideur")

MSG_BENEFICIARY = "Bénéficiaire introuvable"
MSG_DOCUMENT = "Document introuvable"
MSG_RECORD = "Enregistrement introuvable"


def _unrestricted(p: Principal) -> bool:
    """Administrators and machine keys (no user, no role) see every beneficiary."""
    return p.is_admin or (p.scopes is not None and p.user_id is None and not p.roles)


def _key_territory(p: Principal) -> str | None:
    """The territory a key is limited to (a key: ``scopes`` is set)."""
    return p.territoire if p.scopes is not None else None


def beneficiary_condition(p: Principal) -> ColumnElement[bool]:
    """The WHERE clause of the beneficiaries ``p`` may see."""
    if p.open_mode or "administrateur" in p.roles:
        return true()
    if _unrestricted(p):
        return Beneficiary.territoire == p.territoire if p.territoire else true()
    conditions = []
    if "referent" in p.roles and p.user_id is not None:
        conditions.append(Beneficiary.referent_id == p.user_id)
    if p.territoire and any(r in p.roles for r in TERRITORY_ROLES):
        conditions.append(Beneficiary.territoire == p.territoire)
    if not conditions:
        return false()
    condition = or_(*conditions)
    key_territory = _key_territory(p)
    if key_territory:
        condition = and_(condition, Beneficiary.territoire == key_territory)
    return condition


def visible_beneficiaries(p: Principal):
    """``SELECT beneficiary`` limited to what ``p`` may see (add filters, order, paging)."""
    return select(Beneficiary).where(beneficiary_condition(p))


def get_beneficiary(p: Principal, beneficiary_id: int, session: Session | None = None) -> Beneficiary:
    """The beneficiary, or ``NotFound`` when it does not exist or ``p`` may not see it."""
    stmt = visible_beneficiaries(p).where(Beneficiary.id == beneficiary_id)
    row = _first(stmt, session)
    if row is None:
        raise NotFound(MSG_BENEFICIARY, path="beneficiaire")
    return row


def can_see_beneficiary(p: Principal, beneficiary_id: int | None) -> bool:
    if beneficiary_id is None:
        return False
    try:
        get_beneficiary(p, beneficiary_id)
    except NotFound:
        return False
    return True


def _linked_condition(p: Principal, beneficiary_column, author_condition) -> ColumnElement[bool]:
    """Visible with its beneficiary; without one, to the unrestricted and the author."""
    if p.open_mode or "administrateur" in p.roles:
        return true()
    visible = beneficiary_column.in_(select(Beneficiary.id).where(beneficiary_condition(p)))
    unlinked = beneficiary_column.is_(None)
    if _unrestricted(p) and not p.territoire:
        orphan = unlinked
    else:
        orphan = and_(unlinked, author_condition) if author_condition is not None else false()
    return or_(and_(beneficiary_column.is_not(None), visible), orphan)


def document_condition(p: Principal) -> ColumnElement[bool]:
    author = db.IssuedDocument.created_by == p.actor if p.actor != "anonyme" else None
    return _linked_condition(p, db.IssuedDocument.beneficiary_id, author)


def visible_documents(p: Principal):
    return select(db.IssuedDocument).where(document_condition(p))


def get_document(p: Principal, document_id: str, session: Session | None = None) -> db.IssuedDocument:
    """The issued document, or ``NotFound`` when it does not exist or ``p`` may not see it."""
    stmt = visible_documents(p).where(db.IssuedDocument.document_id == document_id)
    row = _first(stmt, session)
    if row is None:
        raise NotFound(MSG_DOCUMENT, path="document")
    return row


def can_see_document(p: Principal, document_id: str | None) -> bool:
    if not document_id:
        return False
    stmt = select(db.IssuedDocument.document_id).where(
        db.IssuedDocument.document_id == document_id, document_condition(p))
    return _first(stmt) is not None


def record_condition(p: Principal) -> ColumnElement[bool]:
    """A record goes with its own beneficiary, else with its issued document's."""
    if p.open_mode or "administrateur" in p.roles:
        return true()
    by_document = exists().where(db.IssuedDocument.document_id == db.Record.document_id,
                                 document_condition(p))
    linked = and_(db.Record.beneficiary_id.is_not(None),
                  _linked_condition(p, db.Record.beneficiary_id, None))
    via_document = and_(db.Record.beneficiary_id.is_(None), db.Record.document_id.is_not(None),
                        by_document)
    unlinked = and_(db.Record.beneficiary_id.is_(None), db.Record.document_id.is_(None),
                    true() if (_unrestricted(p) and not p.territoire) else false())
    # the desk (issue 11): a record whose beneficiary is still to identify is its
    # territory's, for the SLAI agents (and a machine key) of that territory
    to_identify = false()
    if p.territoire and ("agent_slai" in p.roles or _unrestricted(p)):
        to_identify = and_(db.Record.beneficiary_id.is_(None), db.Record.territoire == p.territoire)
    return or_(linked, via_document, unlinked, to_identify)


def visible_records(p: Principal):
    return select(db.Record).where(record_condition(p))


def get_record(p: Principal, record_id: int, session: Session | None = None) -> db.Record:
    stmt = visible_records(p).where(db.Record.id == record_id)
    row = _first(stmt, session)
    if row is None:
        raise NotFound(MSG_RECORD, path="enregistrement")
    return row


MSG_REQUEST = "Demande introuvable"


def request_condition(p: Principal) -> ColumnElement[bool]:
    """A fiche de liaison's request (circuit) goes with its beneficiary, who it always has."""
    from forms_service.circuit.models import Demande

    if p.open_mode or "administrateur" in p.roles:
        return true()
    condition = Demande.beneficiary_id.in_(select(Beneficiary.id).where(beneficiary_condition(p)))
    if "structure" in p.roles and p.organisme:
        # a structure sees the requests the Président sent to it (issue 13), nothing else
        from forms_service.circuit.structure_models import StructureEnvoi

        sent = select(StructureEnvoi.demande_id).where(StructureEnvoi.organisme == p.organisme)
        condition = or_(condition, Demande.id.in_(sent))
    return condition


def visible_requests(p: Principal):
    from forms_service.circuit.models import Demande

    return select(Demande).where(request_condition(p))


def get_request(p: Principal, request_id: int, session: Session | None = None):
    from forms_service.circuit.models import Demande

    row = _first(visible_requests(p).where(Demande.id == request_id), session)
    if row is None:
        raise NotFound(MSG_REQUEST, path="demande")
    return row


MSG_BATCH = "Lot introuvable"


def batch_condition(p: Principal) -> ColumnElement[bool]:
    """A batch of received files (the SLAI desk) is seen by its territory's agents, its
    submitter, administrators and unrestricted machine keys (else their territory's)."""
    from forms_service.desk.models import Batch

    if p.open_mode or "administrateur" in p.roles:
        return true()
    if _unrestricted(p):
        return Batch.territoire == p.territoire if p.territoire else true()
    conditions = [Batch.created_by == p.actor] if p.actor != "anonyme" else []
    if p.territoire and any(r in p.roles for r in TERRITORY_ROLES):
        conditions.append(Batch.territoire == p.territoire)
    return or_(*conditions) if conditions else false()


def get_batch(p: Principal, batch_id: int, session: Session | None = None):
    from forms_service.desk.models import Batch

    row = _first(select(Batch).where(Batch.id == batch_id, batch_condition(p)), session)
    if row is None:
        raise NotFound(MSG_BATCH, path="lot")
    return row


def can_see_batch(p: Principal, batch_id: int, session: Session | None = None) -> bool:
    try:
        get_batch(p, batch_id, session)
    except NotFound:
        return False
    return True


MSG_EP_SESSION = "Séance introuvable"


def ep_session_condition(p: Principal) -> ColumnElement[bool]:
    """A session of the équipe pluridisciplinaire (issue 13) is seen by its territory's
    agents (the EP's secretariat first), administrators and unrestricted machine keys."""
    from forms_service.circuit.ep_models import EpSession

    if p.open_mode or "administrateur" in p.roles:
        return true()
    if _unrestricted(p):
        return EpSession.territoire == p.territoire if p.territoire else true()
    if p.territoire and any(r in p.roles for r in TERRITORY_ROLES):
        return EpSession.territoire == p.territoire
    return false()


def get_ep_session(p: Principal, session_id: int, session: Session | None = None):
    from forms_service.circuit.ep_models import EpSession

    row = _first(select(EpSession).where(EpSession.id == session_id, ep_session_condition(p)),
                 session)
    if row is None:
        raise NotFound(MSG_EP_SESSION, path="seance")
    return row


def _first(stmt, session: Session | None = None):
    if session is not None:
        return session.scalars(stmt).first()
    with db.session() as s:
        return s.scalars(stmt).first()


def link_document(document_id: str, beneficiary_id: int) -> None:
    """Attach an issued document to its beneficiary (checked by the caller through the policy)."""
    from sqlalchemy import update

    with db.session() as s:
        s.execute(update(db.IssuedDocument).where(db.IssuedDocument.document_id == document_id)
                  .values(beneficiary_id=beneficiary_id))
