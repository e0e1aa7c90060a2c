"""The directory file an administrator keeps: YAML, the same format for import and export.

    territoires:
      - code: arrageois
        nom: Arrageois
        mds:
          - {code: mds-arras, nom: MDS de l'Arrageois, adresse: "..."}
        slai: {code: slai-arrageois, nom: SLAI de l'Arrageois, adresse: "..."}
        contacts:                       # e-mails shown on the directory page (optional)
          correspondant: [correspondant.arrageois@example.org]
    organismes:
      - {code: aave-arras, nom: AAVE Arras, type: aave, territoires: [arrageois]}
      - {code: chantier-artois, nom: Chantier..., type: structure_cg, territoires: [artois],
         adresse: "...", animateur: "...", telephone: "...", fax: "...", email: "..."}
                                        # contact details: optional (printed on the fiche
                                        # when the Président designates it for an action CG)

``import_directory`` creates and updates what the file lists (objects it does not
list are kept) and writes one ``DirectoryChange`` per created object or changed
field; running it twice changes nothing the second time. ``export_directory``
writes what ``import_directory`` reads back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from forms_service.directory.models import (CONTACT_ROLES, ORGANISME_KINDS, TERRITORY_CODES,
                                            DirectoryChange, Mds, Organisme, Slai, Territory)
from forms_service.errors import BadRequest, Problem

RULE = "annuaire_invalide"

TerritoryCode = Literal[TERRITORY_CODES]  # type: ignore[valid-type]
Code = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PlaceEntry(_Entry):
    code: str = Code
    nom: str = Field(min_length=1, max_length=128)
    adresse: str = ""


class TerritoryEntry(_Entry):
    code: TerritoryCode
    nom: str = Field(min_length=1, max_length=128)
    mds: list[PlaceEntry] = []
    slai: PlaceEntry | None = None
    contacts: dict[Literal[CONTACT_ROLES], list[str]] = {}  # type: ignore[valid-type]


class OrganismeEntry(_Entry):
    code: str = Code
    nom: str = Field(min_length=1, max_length=128)
    type: Literal[ORGANISME_KINDS]  # type: ignore[valid-type]
    territoires: list[TerritoryCode] = []
    # contact details (an action CG's structure: printed on the fiche when designated)
    adresse: str = Field("", max_length=200)
    animateur: str = Field("", max_length=64)
    telephone: str = Field("", max_length=20)
    fax: str = Field("", max_length=20)
    email: str = Field("", max_length=254)


#: The file's contact keys → the organisme's columns.
ORGANISME_CONTACTS = {"adresse": "address", "animateur": "animateur", "telephone": "telephone",
                      "fax": "fax", "email": "email"}


class DirectoryFile(_Entry):
    territoires: list[TerritoryEntry] = []
    organismes: list[OrganismeEntry] = []


_MESSAGES = {
    "missing": "champ obligatoire",
    "extra_forbidden": "champ inconnu",
    "literal_error": "valeur non admise",
    "string_type": "texte attendu",
    "list_type": "liste attendue",
    "dict_type": "objet attendu",
    "model_type": "objet attendu",
    "string_too_short": "ne doit pas être vide",
    "string_too_long": "trop long",
    "string_pattern_mismatch": "code invalide (minuscules, chiffres, « - » ou « _ »)",
}


def _french(exc: ValidationError) -> list[Problem]:
    problems = []
    for e in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(p) for p in e["loc"])
        message = _MESSAGES.get(e["type"], "valeur invalide")
        if e["type"] == "literal_error":
            expected = (e.get("ctx") or {}).get("expected", "")
            message = f"{message} (attendu : {expected})"
        problems.append(Problem(path, RULE, f"{path} : {message}"))
    return problems


def parse_directory(text: str) -> DirectoryFile:
    """The file's content, checked; raises ``BadRequest`` with French problems."""
    try:
        raw = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (ligne {mark.line + 1})" if mark else ""
        raise BadRequest(f"Le fichier de l'annuaire n'est pas du YAML valide{where}",
                         rule=RULE) from None
    if not isinstance(raw, dict):
        raise BadRequest("Le fichier de l'annuaire doit être un objet YAML "
                         "(« territoires », « organismes »)", rule=RULE)
    try:
        data = DirectoryFile.model_validate(raw)
    except ValidationError as exc:
        raise BadRequest("Annuaire invalide", problems=_french(exc)) from None
    problems = []
    for kind, codes in (("territoires", [t.code for t in data.territoires]),
                        ("mds", [m.code for t in data.territoires for m in t.mds]),
                        ("slai", [t.slai.code for t in data.territoires if t.slai]),
                        ("organismes", [o.code for o in data.organismes])):
        for code in sorted({c for c in codes if codes.count(c) > 1}):
            problems.append(Problem(kind, RULE, f"{kind} : code « {code} » en double"))
    if problems:
        raise BadRequest("Annuaire invalide", problems=problems)
    return data


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    changes: list[DirectoryChange] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


class _Sync:
    """Creates or updates one object at a time, recording each change."""

    def __init__(self, session: Session, actor: str):
        self.s, self.actor, self.summary = session, actor, ImportSummary()

    def _log(self, object_type: str, code: str, change: str, name: str | None = None,
             old: Any = None, new: Any = None) -> None:
        row = DirectoryChange(actor=self.actor, object_type=object_type, object_code=code,
                              change=change, field=name,
                              old=None if old is None else str(old),
                              new=None if new is None else str(new))
        self.s.add(row)
        self.summary.changes.append(row)

    def apply(self, model, object_type: str, code: str, values: dict[str, Any],
              *, private: tuple[str, ...] = ()) -> Any:
        """``values`` by attribute; ``private`` attributes are logged as changed, without values."""
        row = self.s.get(model, code)
        if row is None:
            row = model(code=code)
            for name, value in values.items():
                _set(row, name, value)
            self.s.add(row)
            self._log(object_type, code, "created", new=values.get("name"))
            self.summary.created += 1
            return row
        changed = False
        for name, value in values.items():
            old = _get(row, name)
            if old != value:
                _set(row, name, value)
                hidden = name in private
                self._log(object_type, code, "updated", name,
                          None if hidden else _shown(old), None if hidden else _shown(value))
                changed = True
        if changed:
            self.summary.updated += 1
        else:
            self.summary.unchanged += 1
        return row


def _get(row, name: str) -> Any:
    return row.territoires if name == "territoires" else getattr(row, name)


def _set(row, name: str, value: Any) -> None:
    if name == "territoires":
        row.set_territoires(value)
    else:
        setattr(row, name, value)


def _shown(value: Any) -> Any:
    return ", ".join(value) if isinstance(value, list) else value


def import_directory(session: Session, data: DirectoryFile, actor: str) -> ImportSummary:
    """Create or update every object the file lists (see the module's doc)."""
    sync = _Sync(session, actor)
    for t in data.territoires:
        contacts = {role: list(t.contacts[role]) for role in CONTACT_ROLES if t.contacts.get(role)}
        sync.apply(Territory, "territoire", t.code, {"name": t.nom, "contacts": contacts},
                   private=("contacts",))
        for m in t.mds:
            sync.apply(Mds, "mds", m.code, {"name": m.nom, "territoire": t.code, "address": m.adresse})
        if t.slai:
            sync.apply(Slai, "slai", t.slai.code,
                       {"name": t.slai.nom, "territoire": t.code, "address": t.slai.adresse})
    session.flush()
    known = set(session.scalars(select(Territory.code)))
    for o in data.organismes:
        missing = [c for c in o.territoires if c not in known]
        if missing:
            raise BadRequest("Annuaire invalide", problems=[Problem(
                f"organismes.{o.code}.territoires", RULE,
                f"Organisme « {o.code} » : territoire absent de l'annuaire : {', '.join(missing)}")])
        sync.apply(Organisme, "organisme", o.code,
                   {"name": o.nom, "kind": o.type, "territoires": list(o.territoires),
                    **{column: getattr(o, key) for key, column in ORGANISME_CONTACTS.items()}},
                   private=("email",))
    session.flush()
    return sync.summary


def export_directory(session: Session) -> str:
    """The whole directory as the YAML ``import_directory`` reads."""
    territories = []
    for t in session.scalars(select(Territory).order_by(Territory.code)):
        entry: dict[str, Any] = {"code": t.code, "nom": t.name,
                                 "mds": [{"code": m.code, "nom": m.name, "adresse": m.address}
                                         for m in t.mds]}
        if t.slai:
            s = t.slai[0]
            entry["slai"] = {"code": s.code, "nom": s.name, "adresse": s.address}
        if t.contacts:
            entry["contacts"] = {r: list(t.contacts[r]) for r in CONTACT_ROLES if t.contacts.get(r)}
        territories.append(entry)
    organismes = [{"code": o.code, "nom": o.name, "type": o.kind, "territoires": o.territoires,
                   **{key: getattr(o, column) for key, column in ORGANISME_CONTACTS.items()
                      if getattr(o, column)}}
                  for o in session.scalars(select(Organisme).order_by(Organisme.code))]
    return yaml.safe_dump({"territoires": territories, "organismes": organismes},
                          allow_unicode=True, sort_keys=False, width=100)
