"""The review queue of the SLAI desk: what a person must look at, worst first, and the
agent's decisions (issue 11).

A stored record waits at the desk (``Record.review == "pending"``) for one or more
*items*, each settled by one action of an agent:

==================  =====================================================  =========
item                what the agent sees and does                           weight
==================  =====================================================  =========
``beneficiaire``    « bénéficiaire à identifier »: the crop of the           40
                    administrative part; picks the beneficiary (through
                    ``access.py``: only those the agent may see)
``doublon``         « doublon probable »: a rescan whose readings all        30
                    match an earlier record; confirms or denies it
``champ:<path>``    a field the reader was not sure of: the crop, the        10 each
                    proposal and its reason; confirms or corrects
``identification``  pages identified by their content, not by the QR        5
                    code; confirms the form or refuses it
``echantillon``     an automatically accepted record drawn at random         1
                    (``REVIEW_SAMPLE_RATE``, from the record id:
                    ``desk.batches.sampled``): every
                    value read; confirms all or corrects one
==================  =====================================================  =========

A record's weight is the sum of its open items' weights; the queue is sorted by
weight, then oldest first. Pages not recognised (``BatchPage.status == "unknown"``,
« page non reconnue » with the reader's best guesses) are items of their own, weight 20.

Every decision re-validates the record with the same rules and the app's
``Programme`` (its status follows), is stored as a :class:`ReviewDecision` and is
audited (``enregistrement.confirme`` / ``enregistrement.corrige``): old → new for
codes (boxes, choices, yes/no), only « modifié » for what a person wrote (text,
dates, numbers: personal data stays out of the audit). When no item is left the
record's review is ``done`` and the ingestion's ``desk.records.record_reviewed`` hooks run.

Two agents never review one record at once: :func:`take_lease` sets
``Record.review_lease_by/until`` with one conditional UPDATE (free, expired, or
already ours), refused with :class:`~forms_service.errors.ReviewLeased` (409).
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from forms_service import access, db
from forms_service.audit import record_event
from forms_service.catalogue import catalogue_for
from forms_service.db.models import utcnow
from forms_service.desk.review_models import ReviewDecision
from forms_service.errors import BadRequest, NotFound, ReviewLeased
from forms_service.principal import Principal
from forms_service.rules.programme import Programme
from forms_service.validation import validate

WEIGHTS = {"beneficiaire": 40, "doublon": 30, "page": 20, "champ": 10, "identification": 5,
           "echantillon": 1}
LABELS = {
    "beneficiaire": "Bénéficiaire à identifier",
    "doublon": "Doublon probable",
    "page": "Page non reconnue",
    "champ": "Champ à vérifier",
    "identification": "Identifié par le contenu",
    "echantillon": "Contrôle par échantillon",
}
#: Field types whose values are codes (ticked boxes, choices, yes/no): the audit may hold them.
CODE_TYPES = {"choice", "multi", "bool", "tri", "code"}
#: How a reader identified a page it could not read the QR code of.
BY_CONTENT = {"content"}

MSG_LEASED = ("Cet enregistrement est en cours de vérification par un autre agent ; "
              "il sera libéré au plus tard à {until}.")
MSG_NO_ITEM = "Ce point a déjà été vérifié."
MSG_SAMPLE_FLAGGED = "Signalé faux lors du contrôle par échantillon : indiquez la valeur juste."


# --------------------------------------------------------------------------- items

@dataclass
class Item:
    kind: str                      # beneficiaire | doublon | champ | identification | echantillon | page
    key: str                       # what ReviewDecision.item holds
    path: str | None = None        # a field's path (champ)
    reason: str | None = None      # why a person should look (French)

    @property
    def label(self) -> str:
        return LABELS[self.kind]

    @property
    def weight(self) -> int:
        return WEIGHTS[self.kind]


def open_items(row: db.Record, decided: set[str]) -> list[Item]:
    """The items of a record still to settle, in the order the review page shows them."""
    rec = row.record or {}
    items: list[Item] = []
    if row.beneficiary_id is None and "beneficiaire" not in decided:
        items.append(Item("beneficiaire", "beneficiaire",
                          reason="Le bénéficiaire n'a pas pu être reconnu sur le formulaire."))
    if row.probable_duplicate_of_id is not None and "doublon" not in decided:
        items.append(Item("doublon", "doublon",
                          reason=f"Les valeurs lues sont celles de l'enregistrement "
                                 f"n° {row.probable_duplicate_of_id}."))
    if any(p.get("identified_by") in BY_CONTENT for p in rec.get("pages", [])) \
            and "identification" not in decided:
        items.append(Item("identification", "identification",
                          reason="Le code QR n'a pas été lu : le formulaire a été reconnu par son contenu."))
    for path, f in rec.get("fields", {}).items():
        if f.get("needs_review") and f"champ:{path}" not in decided:
            items.append(Item("champ", f"champ:{path}", path=path, reason=f.get("reason")))
    if row.sampled and "echantillon" not in decided and not items:
        items.append(Item("echantillon", "echantillon",
                          reason="Enregistrement accepté automatiquement, tiré au sort pour "
                                 "mesurer le taux d'erreur de la lecture."))
    return items


def decided_items(session: Session, record_ids: list[int]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {i: set() for i in record_ids}
    if record_ids:
        rows = session.execute(select(ReviewDecision.record_id, ReviewDecision.item)
                               .where(ReviewDecision.record_id.in_(record_ids)))
        for rid, item in rows:
            out[rid].add(item)
    return out


# --------------------------------------------------------------------------- the queue

@dataclass
class QueueEntry:
    kind: str                      # "record" or "page"
    id: int                        # record id, or batch page id
    weight: int
    items: list[Item]
    created_at: dt.datetime | None
    form_id: str | None = None
    batch_id: int | None = None
    leased_by: str | None = None
    lease_until: dt.datetime | None = None
    message: str | None = None
    labels: list[str] = field(default_factory=list)


def _territory_filter(principal: Principal, territoire: str | None) -> str | None:
    """Agents review their own territory's queue; others may choose one (or all: None)."""
    if principal.territoire and not principal.is_admin:
        return principal.territoire
    return territoire or None


def review_queue(session: Session, principal: Principal, *, territoire: str | None = None,
                 now: dt.datetime | None = None) -> list[QueueEntry]:
    """What waits for a person in the territory's queue, worst first."""
    now = now or utcnow()
    territoire = _territory_filter(principal, territoire)
    stmt = access.visible_records(principal).where(db.Record.review == "pending")
    if territoire:
        stmt = stmt.where(db.Record.territoire == territoire)
    rows = list(session.scalars(stmt))
    decided = decided_items(session, [r.id for r in rows])
    entries: list[QueueEntry] = []
    for row in rows:
        items = open_items(row, decided[row.id])
        if not items:
            continue
        leased = row.review_lease_by if _lease_live(row, now) else None
        entries.append(QueueEntry("record", row.id, sum(i.weight for i in items), items,
                                  row.created_at, form_id=row.form_id, batch_id=row.batch_id,
                                  leased_by=leased, lease_until=row.review_lease_until if leased else None,
                                  labels=sorted({i.label for i in items})))
    entries.extend(_unknown_pages(session, principal, territoire))
    entries.sort(key=lambda e: (-e.weight, _sort_time(e.created_at), e.kind, e.id))
    return entries


def _sort_time(value: dt.datetime | None) -> str:
    return value.isoformat() if value else ""


def _unknown_pages(session: Session, principal: Principal, territoire: str | None) -> list[QueueEntry]:
    from forms_service.desk.models import Batch, BatchPage

    stmt = (select(BatchPage, Batch.created_at).join(Batch, Batch.id == BatchPage.batch_id)
            .where(BatchPage.status == "unknown", access.batch_condition(principal))
            .where(~select(ReviewDecision.id).where(ReviewDecision.batch_page_id == BatchPage.id)
                   .exists()))
    if territoire:
        stmt = stmt.where(Batch.territoire == territoire)
    out = []
    for page, created_at in session.execute(stmt):
        item = Item("page", "page", reason=page.message)
        out.append(QueueEntry("page", page.id, item.weight, [item], created_at,
                              batch_id=page.batch_id, message=page.message, labels=[item.label]))
    return out


def _lease_live(row: db.Record, now: dt.datetime) -> bool:
    until = _aware(row.review_lease_until)
    return bool(row.review_lease_by) and until is not None and until > now


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:     # SQLite gives naive UTC back
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def next_entry(session: Session, principal: Principal, *, territoire: str | None = None,
               after: int | None = None, now: dt.datetime | None = None) -> QueueEntry | None:
    """The worst entry no other agent holds (after ``after``'s place when skipping one)."""
    entries = [e for e in review_queue(session, principal, territoire=territoire, now=now)
               if e.leased_by in (None, principal.actor)]
    if after is not None:
        ids = [e.id for e in entries if e.kind == "record"]
        if after in ids:
            later = entries[[e.id for e in entries].index(after) + 1:]
            entries = later + [e for e in entries if e not in later and e.id != after]
    return entries[0] if entries else None


def error_rate(session: Session, principal: Principal, *, territoire: str | None = None) -> dict:
    """The machine's observed error rate: of the sampled records an agent has reviewed,
    the share where at least one value was corrected."""
    territoire = _territory_filter(principal, territoire)
    visible = access.visible_records(principal).where(db.Record.sampled.is_(True),
                                                      db.Record.review == "done")
    if territoire:
        visible = visible.where(db.Record.territoire == territoire)
    ids = select(visible.subquery().c.id)
    reviewed = session.scalar(select(func.count()).select_from(visible.subquery())) or 0
    corrected = session.scalar(
        select(func.count(func.distinct(ReviewDecision.record_id)))
        .where(ReviewDecision.record_id.in_(ids), ReviewDecision.outcome == "corrige")) or 0
    return {"reviewed": reviewed, "corrected": corrected,
            "rate": (corrected / reviewed) if reviewed else None}


# --------------------------------------------------------------------------- the lease

def take_lease(session: Session, principal: Principal, record_id: int, minutes: int,
               now: dt.datetime | None = None) -> db.Record:
    """The record, held by ``principal`` for ``minutes`` (taken, or prolonged if theirs);
    :class:`ReviewLeased` when another agent holds it. 404 when not visible."""
    row = access.get_record(principal, record_id, session)
    now = now or utcnow()
    result = session.execute(
        update(db.Record)
        .where(db.Record.id == record_id,
               or_(db.Record.review_lease_by.is_(None), db.Record.review_lease_by == principal.actor,
                   db.Record.review_lease_until.is_(None), db.Record.review_lease_until <= now))
        .values(review_lease_by=principal.actor, review_lease_until=now + timedelta(minutes=minutes))
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        session.refresh(row)
        until = _aware(row.review_lease_until)
        shown = until.astimezone(dt.timezone.utc).strftime("%H:%M UTC") if until else "bientôt"
        raise ReviewLeased(MSG_LEASED.format(until=shown), path="enregistrement")
    session.refresh(row)
    return row


def release_lease(session: Session, principal: Principal, record_id: int) -> None:
    session.execute(update(db.Record)
                    .where(db.Record.id == record_id, db.Record.review_lease_by == principal.actor)
                    .values(review_lease_by=None, review_lease_until=None)
                    .execution_options(synchronize_session=False))


# --------------------------------------------------------------------------- decisions

@dataclass
class Outcome:
    record_id: int
    item: str
    outcome: str                   # confirme | corrige
    status: str                    # the record's status after re-validation
    review: str                    # pending | done


def decide(session: Session, principal: Principal, settings: Any, record_id: int, item_key: str,
           *, value: Any = None, action: str = "confirmer", now: dt.datetime | None = None) -> Outcome:
    """Settle one item of a record: ``action`` ``confirmer`` keeps the proposal, ``corriger``
    sets ``value`` (a field's new value as the page sends it, a beneficiary id); for a
    duplicate or an identification, ``corriger`` denies it. ``echantillon`` corrected takes
    the path of the field found wrong: that field then waits as a ``champ`` item."""
    row = take_lease(session, principal, record_id, settings.review_lease_minutes, now=now)
    decided = decided_items(session, [row.id])[row.id]
    item = next((i for i in open_items(row, decided) if i.key == item_key), None)
    if item is None:
        raise NotFound(MSG_NO_ITEM, path="point")
    if action not in ("confirmer", "corriger"):
        raise BadRequest("Action inconnue : confirmer ou corriger", path="action")
    fd = catalogue_for(settings.ede_grid).get(row.form_id)
    record = copy.deepcopy(row.record)
    audit: dict[str, Any] = {"item": item.kind}
    outcome = "confirme"

    if item.kind == "champ":
        outcome, audit = _settle_field(fd, record, item.path, action, value)
    elif item.kind == "echantillon":
        if action == "corriger":            # a wrong value: that field goes to review, as a champ item
            path = value
            if not path or path not in record["fields"] or f"champ:{path}" in decided:
                raise BadRequest("Choisissez le champ à corriger", path="champ")
            record["fields"][path].update(needs_review=True, reason=MSG_SAMPLE_FLAGGED)
            outcome = "corrige"
            audit.update(path=path)
    elif item.kind == "beneficiaire":
        if value in (None, ""):
            raise BadRequest("Choisissez le bénéficiaire", path="beneficiaire")
        try:
            beneficiary = access.get_beneficiary(principal, int(value), session)
        except (TypeError, ValueError):
            raise BadRequest("Bénéficiaire invalide", path="beneficiaire") from None
        outcome = "corrige"
        audit.update(old=None, new=beneficiary.id)
        row.beneficiary_id = beneficiary.id
        row.territoire = beneficiary.territoire or row.territoire
    elif item.kind == "doublon":
        if action == "corriger":            # « ce n'est pas un doublon »
            outcome = "corrige"
            audit.update(old=row.probable_duplicate_of_id, new=None)
            row.probable_duplicate_of_id = None
        else:
            audit.update(duplicate_of=row.probable_duplicate_of_id)
    elif item.kind == "identification":
        if action == "corriger":            # « ce n'est pas ce formulaire »
            outcome = "corrige"
            audit.update(old=row.form_id, new=None)

    session.add(ReviewDecision(record_id=row.id, item=item.key, outcome=outcome,
                               sampled=bool(row.sampled), actor=principal.actor, at=now or utcnow()))
    session.flush()
    decided.add(item.key)
    refused = item.kind == "identification" and outcome == "corrige" or _identification_refused(
        session, row.id)
    _revalidate(fd, record, settings, refused=refused)
    row.record = record
    row.status = record["status"]
    if not open_items(row, decided):
        row.review = "done"
        row.reviewed_at = now or utcnow()
        row.reviewed_by = principal.actor
        row.review_lease_by = None
        row.review_lease_until = None
    record_event(principal, f"enregistrement.{outcome}", object_type="enregistrement",
                 object_id=row.id, form_id=row.form_id, document_id=row.document_id,
                 session=session, status=row.status, review=row.review, **audit)
    outcome_obj = Outcome(row.id, item.key, outcome, row.status, row.review)
    if row.review == "done":
        _notify_reviewed(session, row)
    return outcome_obj


def _identification_refused(session: Session, record_id: int) -> bool:
    return session.scalar(select(ReviewDecision.id).where(
        ReviewDecision.record_id == record_id, ReviewDecision.item == "identification",
        ReviewDecision.outcome == "corrige")) is not None


def _notify_reviewed(session: Session, row: db.Record) -> None:
    from forms_service.desk import records

    records.record_reviewed(session, row)


def decide_page(session: Session, principal: Principal, page_id: int,
                now: dt.datetime | None = None) -> None:
    """« Page non reconnue » seen by an agent: not a form of the service (it stays unknown)."""
    from forms_service.desk.models import Batch, BatchPage

    page = session.scalars(select(BatchPage).where(
        BatchPage.id == page_id, BatchPage.status == "unknown",
        BatchPage.batch_id.in_(select(Batch.id).where(access.batch_condition(principal))))).first()
    if page is None:
        raise NotFound("Page introuvable", path="page")
    if session.scalar(select(ReviewDecision.id).where(ReviewDecision.batch_page_id == page_id)):
        raise NotFound(MSG_NO_ITEM, path="page")
    session.add(ReviewDecision(batch_page_id=page_id, item="page", outcome="confirme",
                               actor=principal.actor, at=now or utcnow()))
    record_event(principal, "page.confirmee", object_type="page", object_id=page_id,
                 session=session, batch=page.batch_id)


# --------------------------------------------------------------------------- fields

def field_def(fd, path: str):
    """The catalogue's field at a record path (``x.signee`` of a signature: a yes/no)."""
    f = fd.field(path)
    if f is None and path.endswith(".signee"):
        sig = fd.field(path[: -len(".signee")])
        if sig is not None and sig.type == "signature":
            from forms_service.catalogue import Field

            return Field(path=path, type="tri", label=f"{sig.label} : signée", printed=False)
    return f


def _settle_field(fd, record: dict, path: str, action: str, raw: Any) -> tuple[str, dict]:
    entry = record["fields"][path]
    f = field_def(fd, path)
    old = entry.get("value")
    new = old if action == "confirmer" else coerce(f, raw)
    entry.update(value=new, needs_review=False, confidence=1.0)
    outcome = "confirme" if new == old else "corrige"
    audit: dict[str, Any] = {"item": "champ", "path": path}
    if f is not None and f.type in CODE_TYPES:
        audit.update(old=old, new=new)
    else:
        audit.update(changed=new != old)         # what a person wrote stays out of the audit
    return outcome, audit


def coerce(f, raw: Any) -> Any:
    """A value from the review form (strings) into the record's JSON type for field ``f``."""
    kind = f.type if f is not None else "text"
    if isinstance(raw, str):
        raw = raw.strip()
    empty = raw in (None, "", [])
    codes = f.codes or sorted(f.allowed_codes) if f is not None else []
    if kind == "multi":
        values = raw if isinstance(raw, list) else ([] if empty else [raw])
        if any(v not in codes for v in values):
            raise BadRequest("Case inconnue pour ce champ", path=f.path)
        return [c for c in codes if c in values]
    if kind in ("bool", "tri"):
        if empty:
            return False if kind == "bool" else None
        if str(raw).lower() in ("oui", "true", "1"):
            return True
        if str(raw).lower() in ("non", "false", "0"):
            return False
        raise BadRequest("Réponse attendue : oui ou non", path=f.path)
    if empty:
        return None
    if kind in ("choice", "code"):
        if raw not in codes:
            raise BadRequest("Case inconnue pour ce champ", path=f.path)
        return raw
    if kind == "integer":
        try:
            return int(str(raw))
        except ValueError:
            raise BadRequest("Nombre entier attendu", path=f.path) from None
    if kind == "date":
        return _date(str(raw), f.path)
    return str(raw)


def _date(raw: str, path: str) -> str:
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d/%m/%y"):
        try:
            return dt.datetime.strptime(raw, fmt).date().isoformat()
        except ValueError:
            continue
    raise BadRequest("Date attendue (jj/mm/aaaa)", path=path)


def _revalidate(fd, record: dict, settings: Any, *, refused: bool = False) -> None:
    """The record validated again with the same rules and the app's programme; its status."""
    from parsers.record import record_data

    report = validate(fd, record_data(record), programme=Programme.from_settings(settings))
    errors = [p.as_dict() for p in report.problems]
    if refused:
        errors.append({"path": "", "rule": "identification_refusee", "severity": "error",
                       "message": "Un agent a indiqué que ce document n'est pas ce formulaire."})
    valid = report.valid and not refused
    record["validation"] = {"valid": valid, "errors": errors}
    review = any(f.get("needs_review") for f in record["fields"].values())
    record["status"] = "needs_review" if review else ("valid" if valid else "invalid")
