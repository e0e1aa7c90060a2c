"""The import of beneficiaries from the département's system (CSV or JSON).

    report = import_beneficiaries(session, content, actor=principal)   # bytes of the file
    report.as_dict() -> {"created", "updated", "unchanged", "refused",
                         "lines": [{"line", "status", "id"?, "errors"?: [{"path", "message"}]}]}

JSON: a list of objects ``{num_caf, nom, prenom, date_naissance, adresse, territoire,
mds?, orientation?: {sphere, date_decision}, referent?: e-mail, cer?: {type,
date_debut, date_fin, date_signature}}``. CSV: the same columns, nested ones dotted
(``orientation.sphere``, ``cer.date_fin``), ``;`` or ``,`` (sniffed), UTF-8 with or
without BOM; a line number is the file's (the header is line 1). For JSON it is the
object's rank (1 for the first).

Idempotent on (``num_caf``, ``date_naissance``): a known person is updated, or left
unchanged when nothing differs. A bad line is refused with its reasons in French and
never stops the others. Everything is looked up in bulk (territories, MDS, référents
by e-mail, existing beneficiaries), then written in one flush: 2 000 lines take well
under a second of database work. The report holds no personal value (line numbers,
ids, field paths, codes).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from forms_service.beneficiaries.models import CER_TYPES, SPHERES, Beneficiary
from forms_service.db.models import utcnow
from forms_service.errors import BadRequest

RULE = "import_beneficiaires"
CHUNK = 500   # values per IN (...) query (SQLite's variable limit is far above)

REQUIRED_COLUMNS = ("num_caf", "nom", "prenom", "date_naissance", "adresse", "territoire")


def _date(value: Any) -> Any:
    """ISO ``AAAA-MM-JJ`` or French ``JJ/MM/AAAA``; empty → None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and "/" in value:
        try:
            return dt.datetime.strptime(value.strip(), "%d/%m/%Y").date()
        except ValueError:
            return value
    return value


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OrientationIn(_Part):
    sphere: Literal[SPHERES]  # type: ignore[valid-type]
    date_decision: dt.date | None = None

    @field_validator("date_decision", mode="before")
    @classmethod
    def _french_dates(cls, value: Any) -> Any:
        return _date(value)


class CerIn(_Part):
    type: Literal[CER_TYPES]  # type: ignore[valid-type]
    date_debut: dt.date | None = None
    date_fin: dt.date | None = None
    date_signature: dt.date | None = None

    @field_validator("date_debut", "date_fin", "date_signature", mode="before")
    @classmethod
    def _french_dates(cls, value: Any) -> Any:
        return _date(value)


class BeneficiaryLine(_Part):
    num_caf: str = Field(pattern=r"^[0-9]{1,12}$")
    nom: str = Field(min_length=1, max_length=40)
    prenom: str = Field(min_length=1, max_length=40)
    date_naissance: dt.date
    adresse: str = Field(min_length=1, max_length=140)
    territoire: str = Field(min_length=1)
    mds: str | None = None
    orientation: OrientationIn | None = None
    referent: str | None = None
    cer: CerIn | None = None

    @field_validator("date_naissance", mode="before")
    @classmethod
    def _french_dates(cls, value: Any) -> Any:
        return _date(value)

    @field_validator("num_caf", mode="before")
    @classmethod
    def _caf_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("mds", "referent", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


_MESSAGES = {
    "missing": "champ obligatoire",
    "extra_forbidden": "colonne inconnue",
    "string_type": "texte attendu",
    "string_too_short": "ne doit pas être vide",
    "string_too_long": "trop long ({max_length} caractères au plus)",
    "date_from_datetime_parsing": "date attendue (AAAA-MM-JJ ou JJ/MM/AAAA)",
    "date_parsing": "date attendue (AAAA-MM-JJ ou JJ/MM/AAAA)",
    "date_type": "date attendue (AAAA-MM-JJ ou JJ/MM/AAAA)",
    "date_from_datetime_inexact": "date attendue (AAAA-MM-JJ ou JJ/MM/AAAA)",
    "model_type": "objet attendu",
    "model_attributes_type": "objet attendu",
}
_PATTERNS = {"num_caf": "numéro d'allocataire CAF : 1 à 12 chiffres"}
_LITERALS = {"orientation.sphere": "« solidarite » ou « professionnelle » attendu",
             "cer.type": "« cers » ou « cerp » attendu"}


def _problems(exc: ValidationError) -> list[dict[str, str]]:
    out = []
    for e in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(p) for p in e["loc"])
        kind = e["type"]
        if kind == "string_pattern_mismatch":
            message = _PATTERNS.get(path, "format invalide")
        elif kind == "literal_error":
            message = _LITERALS.get(path, "valeur non admise")
        else:
            message = _MESSAGES.get(kind, "valeur invalide").format(**(e.get("ctx") or {}))
        out.append({"path": path, "message": f"{path} : {message}"})
    return out


# ------------------------------------------------------------------ reading the file

def _rows_of_json(text: str) -> list[tuple[int, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"Le fichier n'est pas du JSON valide (ligne {exc.lineno}, "
                         f"colonne {exc.colno})", rule=RULE) from None
    if not isinstance(data, list):
        raise BadRequest("Le fichier JSON doit contenir une liste d'objets", rule=RULE)
    return [(i + 1, item) for i, item in enumerate(data)]


def _nest(flat: dict[str, str]) -> dict[str, Any]:
    """``{"cer.type": "cers"}`` → ``{"cer": {"type": "cers"}}``; empty cells dropped,
    a group whose cells are all empty dropped with them."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if key is None:   # more cells than columns
            out["_colonnes_en_trop"] = value
            continue
        value = (value or "").strip()
        if not value:
            continue
        head, dot, tail = key.strip().partition(".")
        if dot:
            out.setdefault(head, {})[tail] = value
        else:
            out[head] = value
    return out


def _rows_of_csv(text: str) -> list[tuple[int, Any]]:
    first = text.split("\n", 1)[0]
    try:
        dialect = csv.Sniffer().sniff(first, delimiters=";,")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ";" if first.count(";") >= first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise BadRequest(f"Colonnes manquantes dans l'en-tête du fichier CSV : {', '.join(missing)}",
                         rule=RULE)
    rows = []
    for row in reader:
        if not any((v or "").strip() for k, v in row.items() if k is not None):
            continue   # blank line
        rows.append((reader.line_num, _nest(row)))
    return rows


def read_rows(content: bytes, filename: str = "") -> list[tuple[int, Any]]:
    """``[(line number, object)]`` from a CSV or JSON file (by extension, else by content)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("Le fichier doit être encodé en UTF-8", rule=RULE) from None
    name = filename.lower()
    if name.endswith(".json") or (not name.endswith(".csv") and text.lstrip().startswith("[")):
        return _rows_of_json(text)
    if not text.strip():
        raise BadRequest("Le fichier est vide", rule=RULE)
    return _rows_of_csv(text)


# ------------------------------------------------------------------ the import

@dataclass
class LineResult:
    line: int
    status: Literal["created", "updated", "unchanged", "refused"]
    id: int | None = None
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        d: dict[str, Any] = {"line": self.line, "status": self.status}
        if self.id is not None:
            d["id"] = self.id
        if self.errors:
            d["errors"] = self.errors
        return d


@dataclass
class ImportReport:
    lines: list[LineResult]

    def count(self, status: str) -> int:
        return sum(1 for r in self.lines if r.status == status)

    def ids(self, status: str) -> list[int]:
        return [r.id for r in self.lines if r.status == status and r.id is not None]

    def as_dict(self) -> dict:
        return {**{s: self.count(s) for s in ("created", "updated", "unchanged", "refused")},
                "lines": [r.as_dict() for r in self.lines]}


def _chunks(values: list, size: int = CHUNK):
    for i in range(0, len(values), size):
        yield values[i:i + size]


class _Lookups:
    """Everything the lines refer to, read in a few queries."""

    def __init__(self, s: Session, lines: list[BeneficiaryLine]):
        from forms_service.accounts.models import User, UserRole
        from forms_service.directory.models import Mds, Territory

        self.territories = set(s.scalars(select(Territory.code)))
        self.mds: dict[str, str] = dict(s.execute(select(Mds.code, Mds.territoire)).all())
        self.mds_of: dict[str, list[str]] = {}
        for code, territory in sorted(self.mds.items()):
            self.mds_of.setdefault(territory, []).append(code)
        emails = sorted({ln.referent.strip().lower() for ln in lines if ln.referent})
        self.users: dict[str, tuple[int, bool]] = {}
        self.referents: set[int] = set()
        for chunk in _chunks(emails):
            for uid, email, active in s.execute(
                    select(User.id, User.email, User.active).where(User.email.in_(chunk))):
                self.users[email] = (uid, active)
            self.referents.update(s.scalars(
                select(UserRole.user_id).join(User, User.id == UserRole.user_id)
                .where(User.email.in_(chunk), UserRole.role == "referent")))
        keys = sorted({(ln.num_caf, ln.date_naissance) for ln in lines})
        self.existing: dict[tuple[str, dt.date], Beneficiary] = {}
        for chunk in _chunks(keys):
            for b in s.scalars(select(Beneficiary).where(
                    tuple_(Beneficiary.num_caf, Beneficiary.date_naissance).in_(chunk))):
                self.existing[(b.num_caf, b.date_naissance)] = b


def _values(ln: BeneficiaryLine, look: _Lookups) -> tuple[dict[str, Any] | None, list[dict]]:
    """The row's columns from a valid line, or the reasons to refuse it."""
    errors = []
    if ln.territoire not in look.territories:
        errors.append({"path": "territoire",
                       "message": f"territoire : « {ln.territoire} » n'est pas dans l'annuaire"})
    mds = ln.mds
    if mds is None and ln.territoire in look.territories:
        candidates = look.mds_of.get(ln.territoire, [])
        if len(candidates) == 1:
            mds = candidates[0]
        else:
            errors.append({"path": "mds", "message": (
                "mds : obligatoire, le territoire a plusieurs MDS" if candidates
                else "mds : obligatoire, le territoire n'a pas de MDS dans l'annuaire")})
    elif mds is not None and mds not in look.mds:
        errors.append({"path": "mds", "message": f"mds : « {mds} » n'est pas dans l'annuaire"})
    elif mds is not None and look.mds[mds] != ln.territoire:
        errors.append({"path": "mds", "message": f"mds : « {mds} » n'est pas une MDS de ce territoire"})
    referent_id = None
    if ln.referent:
        found = look.users.get(ln.referent.strip().lower())
        if found is None:
            errors.append({"path": "referent",
                           "message": "referent : aucun compte n'a cette adresse électronique"})
        elif not found[1]:
            errors.append({"path": "referent", "message": "referent : ce compte est désactivé"})
        elif found[0] not in look.referents:
            errors.append({"path": "referent",
                           "message": "referent : ce compte n'a pas le rôle « referent »"})
        else:
            referent_id = found[0]
    cer = ln.cer
    if cer and cer.date_debut and cer.date_fin and cer.date_fin <= cer.date_debut:
        errors.append({"path": "cer.date_fin",
                       "message": "cer.date_fin : doit être postérieure à cer.date_debut"})
    if errors:
        return None, errors
    return {"nom": ln.nom, "prenom": ln.prenom, "adresse": ln.adresse, "territoire": ln.territoire,
            "mds": mds,
            "orientation_sphere": ln.orientation.sphere if ln.orientation else None,
            "orientation_date": ln.orientation.date_decision if ln.orientation else None,
            "referent_id": referent_id,
            "cer_type": cer.type if cer else None,
            "cer_date_debut": cer.date_debut if cer else None,
            "cer_date_fin": cer.date_fin if cer else None,
            "cer_date_signature": cer.date_signature if cer else None}, []


def import_beneficiaries(session: Session, content: bytes, filename: str = "") -> ImportReport:
    """Create or update the file's beneficiaries (see the module's doc). Does not commit."""
    results: list[LineResult] = []
    parsed: list[tuple[LineResult, BeneficiaryLine]] = []
    for line, obj in read_rows(content, filename):
        result = LineResult(line, "refused")
        results.append(result)
        if not isinstance(obj, dict):
            result.errors = [{"path": "", "message": "objet attendu"}]
            continue
        if "_colonnes_en_trop" in obj:
            result.errors = [{"path": "", "message": "plus de cellules que de colonnes"}]
            continue
        try:
            parsed.append((result, BeneficiaryLine.model_validate(obj)))
        except ValidationError as exc:
            result.errors = _problems(exc)
    look = _Lookups(session, [ln for _, ln in parsed])
    first_line: dict[tuple[str, dt.date], int] = {}
    created: list[tuple[LineResult, Beneficiary]] = []
    now = utcnow()
    for result, ln in parsed:
        key = (ln.num_caf, ln.date_naissance)
        if key in first_line:
            result.errors = [{"path": "num_caf", "message": (
                f"num_caf : même allocataire et même date de naissance qu'à la ligne "
                f"{first_line[key]}")}]
            continue
        first_line[key] = result.line
        values, errors = _values(ln, look)
        if values is None:
            result.errors = errors
            continue
        row = look.existing.get(key)
        if row is None:
            row = Beneficiary(num_caf=ln.num_caf, date_naissance=ln.date_naissance,
                              created_at=now, updated_at=now, **values)
            session.add(row)
            created.append((result, row))
            result.status = "created"
            continue
        changed = {k: v for k, v in values.items() if getattr(row, k) != v}
        if changed:
            for k, v in changed.items():
                setattr(row, k, v)
            row.updated_at = now
            result.status = "updated"
        else:
            result.status = "unchanged"
        result.id = row.id
    session.flush()
    for result, row in created:
        result.id = row.id
    return ImportReport(results)
