"""Shared set-up of the people tests: the demo directory, accounts and API keys made
through the accounts functions (real rows, keys stored hashed), beneficiaries imported."""

from __future__ import annotations

import json
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "samples" / "demo"

#: email → (roles, territoire, organisme)
PEOPLE = {
    "admin@t.example": (["administrateur"], None, None),
    "ref1@t.example": (["referent"], "arrageois", "aave-arras"),
    "ref2@t.example": (["referent"], "arrageois", "pe-arras"),
    "agent.arr@t.example": (["agent_slai"], "arrageois", None),
    "agent.art@t.example": (["agent_slai"], "artois", None),
    "structure@t.example": (["structure"], None, "chantier-artois"),
}


def person(i: int, territoire: str, referent: str | None, **extra) -> dict:
    line = {"num_caf": f"{7000000 + i}", "nom": f"NOM{i}", "prenom": f"Prenom{i}",
            "date_naissance": "1980-05-17", "adresse": f"{i} rue du Test, 62000 Arras",
            "territoire": territoire, **extra}
    if referent:
        line["referent"] = referent
    return line


def seed(app) -> dict:
    """Directory + accounts + keys (one per person, acting as them) + 4 beneficiaries.
    Returns ``{"keys": {email: key}, "ids": {email: user id}, "beneficiaries": {name: id}}``."""
    from forms_service import db
    from forms_service.accounts import keys, users
    from forms_service.beneficiaries.importer import import_beneficiaries
    from forms_service.directory.file import import_directory, parse_directory

    out: dict = {"keys": {}, "ids": {}}
    with app.app_context():
        with db.session() as s:
            import_directory(s, parse_directory((DEMO / "annuaire.yaml").read_text("utf-8")), "test")
            for email, (roles, territoire, organisme) in PEOPLE.items():
                out["ids"][email] = users.save_user(s, email, roles, password="mot-de-passe-de-test",
                                                    territoire=territoire, organisme=organisme).id
                _, key = keys.create_key(s, email.split("@")[0], "render,parse,records,beneficiaries,admin",
                                         user_email=email)
                out["keys"][email] = key
            lines = [person(1, "arrageois", "ref1@t.example"),
                     person(2, "arrageois", "ref2@t.example"),
                     person(3, "artois", None),
                     person(4, "arrageois", "ref1@t.example")]
            report = import_beneficiaries(s, json.dumps(lines).encode(), "b.json")
            assert report.count("created") == 4, report.as_dict()
            ids = [r.id for r in report.lines]
    out["beneficiaries"] = {"ref1_a": ids[0], "ref2": ids[1], "artois": ids[2], "ref1_b": ids[3]}
    return out


def headers(key: str) -> dict:
    return {"X-API-Key": key}
