"""Échéances: what is due for a référent's beneficiaries (issue 14), counted with the
month rule of the CER checks (``rules.cer.add_months``) and the programme's
parameters (``programme.yaml``: ``cers.renewal_request_month``,
``cers/cerp.signature_deadline_months``, ``cers.max_consecutive_months``).

    for e in due(beneficiaries, today=date.today(), params=programme.params()):
        e.code, e.beneficiary_id, e.date, e.message

Each rule and its day (``WINDOW_DAYS`` = 30):

- ``cer_fin``: the CER ends within 30 days (from today to today + 30 days, both included);
- ``cers_renouvellement``: a CERS reached ``renewal_request_month`` (5) months: from that
  day to its end, its renewal is to be asked;
- ``contrat_non_signe``: no contract signed since the orientation decision, and its
  deadline (1 month for the sphère professionnelle's CERP, 2 for the CERS) is past
  (the day after the deadline);
- ``cers_12_mois``: the CERS in force brings the months in a row to
  ``max_consecutive_months`` (12) within 30 days (or already did, while it runs): the PAP
  and its bilan go to the équipe pluridisciplinaire. The months already done come from
  the last CERS issued for the person (``cer.mois_precedents``), 0 when none.

And for the requests (fiches de liaison in the circuit, ``forms_service.circuit``),
:func:`requests_due`: every open request waiting for someone else's avis
(``avis_attendu``: the correspondant's, the Président's decision, the structure's) or for
the équipe pluridisciplinaire's (``avis_ep``), dated by its ``echeance`` (else the day it
was sent), and those sent back to correct (``a_corriger``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Mapping

from forms_service.rules.cer import add_months

WINDOW_DAYS = 30
#: The contract an orientation's sphere leads to.
SPHERE_FORMS = {"professionnelle": "cerp", "solidarite": "cers"}


@dataclass(frozen=True)
class Echeance:
    code: str
    beneficiary_id: int
    date: dt.date
    message: str


def _fr(d: dt.date) -> str:
    return d.strftime("%d/%m/%Y")


def due_for(b, *, today: dt.date, params: Mapping, months_done: int = 0) -> list[Echeance]:
    """The échéances of one beneficiary (anything with the ``Beneficiary`` columns)."""
    out: list[Echeance] = []
    window = today + dt.timedelta(days=WINDOW_DAYS)
    debut, fin = b.cer_date_debut, b.cer_date_fin
    if fin and today <= fin <= window:
        out.append(Echeance("cer_fin", b.id, fin, f"Le CER se termine le {_fr(fin)}"))
    if b.cer_type == "cers" and debut and fin:
        renewal = add_months(debut, params["cers"]["renewal_request_month"])
        if renewal <= today <= fin:
            out.append(Echeance("cers_renouvellement", b.id, renewal,
                                f"Renouvellement du CERS à demander (5 mois le {_fr(renewal)})"))
        limit = params["cers"].get("max_consecutive_months")
        if limit:
            reached = add_months(debut, limit - months_done)
            if reached <= fin and reached <= window and today <= fin:
                out.append(Echeance("cers_12_mois", b.id, reached,
                                    f"{limit} mois de CERS à la suite le {_fr(reached)} : "
                                    "transmettre le PAP et son bilan à l'équipe pluridisciplinaire"))
    form = SPHERE_FORMS.get(b.orientation_sphere or "")
    decided = b.orientation_date
    if form and decided:
        signed = b.cer_date_signature
        if signed is None or signed < decided:
            months = params[form]["signature_deadline_months"]
            deadline = add_months(decided, months)
            if today > deadline:
                out.append(Echeance("contrat_non_signe", b.id, deadline,
                                    f"Contrat non signé dans le délai de {months} mois "
                                    f"(décision d'orientation du {_fr(decided)})"))
    return out


#: Request state → (code, message) of what the référent waits for.
REQUEST_STATES = {
    "avis_correspondant": ("avis_attendu", "Avis du correspondant attendu"),
    "decision": ("avis_attendu", "Décision du Président attendue"),
    "structure": ("avis_attendu", "Retour de la structure attendu"),
    "en_ep": ("avis_ep", "Avis de l'équipe pluridisciplinaire attendu"),
    "a_corriger": ("a_corriger", "Demande à corriger"),
}


def requests_due(requests: Iterable) -> list[Echeance]:
    """The échéances of requests (anything with ``Demande``'s ``id``, ``etat``,
    ``beneficiary_id``, ``echeance``, ``created_at``)."""
    out = []
    for d in requests:
        if d.etat not in REQUEST_STATES:
            continue
        code, message = REQUEST_STATES[d.etat]
        day = d.echeance or d.created_at.date()
        suffix = f" (échéance le {_fr(d.echeance)})" if d.echeance else ""
        out.append(Echeance(code, d.beneficiary_id, day, f"{message} — demande n° {d.id}{suffix}"))
    return out


def due(beneficiaries: Iterable, *, today: dt.date, params: Mapping,
        months_done: Mapping[int, int] | None = None, requests: Iterable = ()) -> list[Echeance]:
    """Every échéance of ``beneficiaries`` and of their ``requests``, soonest first."""
    months_done = months_done or {}
    out = [e for b in beneficiaries
           for e in due_for(b, today=today, params=params, months_done=months_done.get(b.id, 0))]
    out += requests_due(requests)
    return sorted(out, key=lambda e: (e.date, e.beneficiary_id, e.code))


def for_referent(s, p, *, today: dt.date, params: Mapping) -> list[tuple[Echeance, str]]:
    """``(échéance, "NOM Prénom")`` of the people ``p`` (a référent's principal) is named for,
    read through the access policy in session ``s``."""
    from sqlalchemy import select

    from forms_service import access, db
    from forms_service.beneficiaries.models import Beneficiary
    from forms_service.circuit.models import Demande

    people = list(s.scalars(access.visible_beneficiaries(p).where(Beneficiary.referent_id == p.user_id)))
    names = {b.id: f"{b.nom} {b.prenom}" for b in people}
    months: dict[int, int] = {}
    if names:
        rows = s.execute(select(db.IssuedDocument.beneficiary_id, db.IssuedDocument.data)
                         .where(db.IssuedDocument.beneficiary_id.in_(list(names)),
                                db.IssuedDocument.form_id == "cers")
                         .order_by(db.IssuedDocument.created_at))
        for beneficiary_id, data in rows:      # the last CERS issued says the months done before it
            months[beneficiary_id] = int(((data or {}).get("cer") or {}).get("mois_precedents") or 0)
    open_requests = [d for d in s.scalars(access.visible_requests(p).where(
        Demande.referent_id == p.user_id, Demande.etat.in_(list(REQUEST_STATES))))
        if d.beneficiary_id in names]
    items = due(people, today=today, params=params, months_done=months, requests=open_requests)
    return [(e, names[e.beneficiary_id]) for e in items]
