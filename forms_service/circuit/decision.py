"""The Président's decision by delegation (step ``president`` of ``states.yaml``, role
``decideur``: the SLAI's chief or the MDS director of the request's territory).

    rows = awaiting(s, principal)                       # the requests at ``decision``
    outcome = decide(s, principal, demande_id, Decision(choix="favorable", avenant="oui",
                                                         organisme="atelier-arras"))

A decision is an avis through ``service.record_avis``: the avis row, and the fiche's part
« réservée au Président » (``decision_president``, ``avenant``, ``president.observation``,
``president.structure*``, ``president.date``), so the fiche prints again with it. The
request then moves on (``structure`` for a favourable action CG, else ``traitee``) and the
référent is told (e-mail, « Mes demandes »).

The structure of a favourable action CG is the directory's organisme the decideur picks
(its contact details fill the fiche's fields) or one entered by hand. Whatever recorded
the decision (the web, the API, or page 3 read back from paper), ``on_president`` then
sends the request to its structure (``circuit.structure.designate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from forms_service import access
from forms_service.circuit import service, structure
from forms_service.circuit.machine import machine
from forms_service.circuit.models import Demande
from forms_service.directory.models import Organisme
from forms_service.errors import BadRequest
from forms_service.principal import Principal

STEP = "president"
CG_TYPE = "actions_cg"
AVENANT_TYPE = "avenant"

#: The fiche's fields of the designated structure (``president`` section) → the
#: directory organisme's attribute that fills them.
STRUCTURE_FIELDS = {
    "president.structure": "name",
    "president.structure_adresse": "address",
    "president.structure_animateur": "animateur",
    "president.structure_tel": "telephone",
    "president.structure_fax": "fax",
    "president.structure_email": "email",
}


@dataclass
class Decision:
    choix: str
    #: ``oui`` / ``non``: an avenant to the CER initially signed (required for an avenant).
    avenant: str | None = None
    #: The directory organisme designated for the action CG, by code.
    organisme: str | None = None
    #: A structure entered by hand (or details overriding the directory's), by fiche path.
    structure: dict[str, str] = field(default_factory=dict)
    commentaire: str = ""


def awaiting(s: Session, p: Principal) -> list[Demande]:
    """The requests awaiting the Président's decision that ``p`` may see (a decideur: their
    territory's), oldest first."""
    stmt = (access.visible_requests(p).where(Demande.etat == "decision")
            .order_by(Demande.created_at, Demande.id))
    return list(s.scalars(stmt))


def structures_for(s: Session, demande: Demande) -> list[Organisme]:
    """The directory's organismes working in the request's territory: its action CG
    structures first."""
    rows = [o for o in s.scalars(select(Organisme).order_by(Organisme.name))
            if demande.territoire in o.territoires]
    return sorted(rows, key=lambda o: o.kind != "structure_cg")


def organisme_fields(o: Organisme) -> dict[str, str]:
    """The organisme's contact details as the fiche's fields (cut to what each prints)."""
    out = {}
    for path, attribute in STRUCTURE_FIELDS.items():
        value = (getattr(o, attribute) or "").strip()
        limit = service.form().field(path).max_length
        out[path] = value[:limit] if limit else value
    return out


def decide(s: Session, p: Principal, demande_id: int, d: Decision, *,
           source: str = "web") -> service.Outcome:
    """Record the decision (see the module docstring); French ``BadRequest`` when
    something the step needs is missing."""
    demande = access.get_request(p, demande_id, session=s)
    machine().check(machine().step(STEP), demande.etat, p.roles, is_admin=p.is_admin)
    fields: dict[str, str] = {}
    if AVENANT_TYPE in demande.types and d.avenant not in ("oui", "non"):
        raise BadRequest("Indiquez si la décision vaut avenant au contrat (oui ou non)",
                         path="avenant", rule="avenant_manquant")
    if d.avenant:
        fields["avenant"] = d.avenant
    if d.choix == "favorable" and CG_TYPE in demande.types:
        fields.update(_designation(s, demande, d))
    return service.record_avis(s, p, demande_id, STEP, d.choix, d.commentaire, source=source,
                               fields=fields)


def _designation(s: Session, demande: Demande, d: Decision) -> dict[str, str]:
    """The designated structure's fields: the organisme's, then what was entered."""
    fields: dict[str, str] = {}
    if d.organisme:
        o = next((o for o in structures_for(s, demande) if o.code == d.organisme), None)
        if o is None:
            raise BadRequest("Cette structure n'intervient pas sur le territoire de la demande",
                             path="organisme", rule="structure_inconnue")
        fields.update(organisme_fields(o))
    fields.update({path: value.strip() for path, value in d.structure.items()
                   if path in STRUCTURE_FIELDS and value and value.strip()})
    if not fields.get("president.structure"):
        raise BadRequest("Désignez la structure de l'action CG (dans l'annuaire ou saisie)",
                         path="organisme", rule="structure_manquante")
    o = structure.match_organisme(s, demande, fields["president.structure"])
    if not structure.accounts_of(s, o) and not fields.get("president.structure_email"):
        raise BadRequest("Cette structure n'a pas de compte : indiquez son adresse e-mail, "
                         "la fiche lui sera envoyée", path="president.structure_email",
                         rule="structure_sans_contact")
    return fields


def on_president(s: Session, demande: Demande, outcome: service.Outcome) -> None:
    """After the step (web, API, paper): a favourable action CG goes to its structure."""
    if demande.etat == "structure":
        structure.designate(s, demande, outcome)


def install() -> None:
    """Register ``on_president`` after the step (``circuit.hooks.install`` calls it)."""
    hooks = service.AFTER_STEP.setdefault(STEP, [])
    if on_president not in hooks:
        hooks.append(on_president)
    structure.register()   # the queue's job that prints and sends a structure's copy


__all__ = ["Decision", "decide", "awaiting", "structures_for", "organisme_fields",
           "install", "STEP", "STRUCTURE_FIELDS"]
