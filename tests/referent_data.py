"""Shared set-up of the référent pages' tests (issue 14): the people of
``tests/people_data.py``, and a form's data as a browser posts it.

``posted(data)`` encodes a form's data the way the pages name their inputs — the
path with ``-`` for ``.`` and list rows by index (``pap-0-code``), a ticked box
``y``, a signature or a yes/no/unknown fact ``oui``/``non`` — written here on its own
from that naming contract, not with the code under test.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from forms_service.catalogue import catalogue

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def without_reserved(form_id: str, data: dict) -> dict:
    """``data`` without what the SLAI, the EP or the Président fill (not on the pages)."""
    fd = catalogue.get(form_id)
    out = copy.deepcopy(data)
    for s in fd.sections:
        if not s.reserved:
            continue
        for f in s.fields:
            parts = f.path.split(".")
            node = out
            for p in parts[:-1]:
                node = node.get(p) if isinstance(node, dict) else None
                if node is None:
                    break
            if isinstance(node, dict):
                node.pop(parts[-1], None)
    for key in [k for k, v in out.items() if v == {}]:
        out.pop(key)
    return out


def posted(data: dict, prefix: str = "") -> list[tuple[str, str]]:
    """The (name, value) pairs a browser sends for ``data``."""
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key == "signee" or (isinstance(value, bool) and prefix.startswith("pieces_jointes")):
            if value is not None:
                out.append((name, "oui" if value else "non"))
        elif isinstance(value, dict):
            out.extend(posted(value, f"{name}-"))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for n, row in enumerate(value):
                out.extend(posted(row, f"{name}-{n}-"))
        elif isinstance(value, list):
            out.extend((name, str(v)) for v in value)
        elif isinstance(value, bool):
            if value:
                out.append((name, "y"))
        elif value is not None:
            out.append((name, str(value)))
    return out


def dump(form_id: str, data: dict) -> dict:
    return catalogue.get(form_id).model.model_validate(data).model_dump(mode="json")


def broken_suspension() -> dict:
    """The sample suspension without its convocations joined: routed back (``a_corriger``)."""
    data = without_reserved("fiche-liaison", sample("fiche-liaison-suspension"))
    data["pieces_jointes"]["convocations"] = False
    return data


def request_to_correct(app, referent_email: str, beneficiary_id: int) -> int:
    """A fiche de liaison that the référent sent through the API (as a paper one read at the
    desk would arrive) and that the circuit sent back to them: its request id."""
    from sqlalchemy import select

    from forms_service import db
    from forms_service.accounts.authn import principal_for_user
    from forms_service.accounts.models import User
    from forms_service.circuit import service

    with app.app_context(), db.session() as s:
        user = s.scalars(select(User).where(User.email == referent_email)).one()
        outcome = service.submit(s, principal_for_user(user), broken_suspension(),
                                 beneficiary_id=beneficiary_id, source="api")
        assert outcome.demande.etat == "a_corriger", outcome.demande.problems
        return outcome.demande.id
