"""``/api/v1/forms``: the catalogue and validation, as JSON.

Request and response bodies are pydantic models, so ``/api/v1/openapi.json`` is
generated; each form's own JSON Schema is added to the document's components
from ``fd.json_schema()`` (see ``form_components``), never written by hand.
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field, RootModel

from forms_service.api.errors import ErrorBody
from forms_service.catalogue import catalogue
from forms_service.config import current_settings
from forms_service.errors import BadRequest

tag = Tag(name="formulaires", description="Catalogue des formulaires et validation des données")
bp = APIBlueprint("forms", __name__, abp_tags=[tag],
                  abp_responses={400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 413: ErrorBody,
                                 500: ErrorBody})


class FormPath(BaseModel):
    form_id: str = Field(description="Identifiant ou alias du formulaire (ex. « fiche-liaison », « annexe-7 »)")


class FormSummary(BaseModel):
    id: str
    title: str
    kind: str = Field(description="« form » ou « reference » (liste de référence)")
    pages: int | None


class FormList(RootModel[list[FormSummary]]):
    pass


class FormDetail(FormSummary):
    schema_: dict[str, Any] | None = Field(
        default=None, alias="schema",
        description="JSON Schema des données du formulaire (absent pour une liste de référence)")
    entries: list[dict[str, Any]] | None = Field(
        default=None, description="Lignes d'une liste de référence (absent pour un formulaire)")


class FormData(RootModel[dict[str, Any]]):
    """The data of one form, as described by the form's JSON Schema
    (``components.schemas.<form id>`` in this document, or ``GET /api/v1/forms/{form_id}``)."""

    model_config = ConfigDict(json_schema_extra={"description": "Données du formulaire (objet JSON)"})


class ReportItem(BaseModel):
    path: str = Field(description="Chemin pointé, indices de liste à partir de 0 ; « » pour le document")
    rule: str
    severity: str = Field(description="« error » ou « warning »")
    message: str


class ValidationReport(BaseModel):
    valid: bool
    errors: list[ReportItem]
    derived: dict[str, Any] | None = Field(default=None, description="Valeurs calculées (total EDE, ...)")


@bp.get("/forms", summary="Liste des formulaires et listes de référence",
        responses={200: FormList})
def list_forms():
    return [fd.summary() for fd in catalogue.forms()]


@bp.get("/forms/<form_id>", summary="Un formulaire : son schéma, ou les lignes d'une liste de référence",
        responses={200: FormDetail})
def get_form(path: FormPath):
    fd = catalogue.get(path.form_id)
    body: dict[str, Any] = fd.summary()
    if fd.kind == "form":
        body["schema"] = fd.json_schema()
    else:
        body["entries"] = [e.as_dict() for e in fd.entries()]
    return body


@bp.post("/forms/<form_id>/validate", summary="Valider des données pour un formulaire",
         description="Répond 200 avec {\"valid\": false, \"errors\": [...]} quand les données "
                     "enfreignent le modèle ou les règles ; 400 quand le corps n'est pas un objet JSON ; "
                     "404 pour un formulaire inconnu ; 400 pour une liste de référence.",
         responses={200: ValidationReport})
def validate_form(path: FormPath, body: FormData):
    from forms_service.rules.programme import Programme
    from forms_service.validation import validate

    programme = Programme.from_settings(current_settings())
    fd = programme.catalogue.get(path.form_id)
    data = request.get_json(silent=True)
    if not isinstance(data, dict):  # e.g. a JSON string holding an object
        raise BadRequest("Le corps de la requête doit être un objet JSON")
    return validate(fd, data, programme=programme).as_dict()


def form_components() -> dict[str, dict]:
    """Each form's JSON Schema as OpenAPI components: ``<form id>`` for the form and
    ``<form id>.<Name>`` for its nested definitions (``$defs`` hoisted, refs rewritten)."""
    out: dict[str, dict] = {}
    for fd in catalogue.forms():
        if fd.kind != "form":
            continue
        schema = fd.json_schema()
        defs = schema.pop("$defs", {})
        prefix = f"#/components/schemas/{fd.id}."

        def rewrite(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: (prefix + v.removeprefix("#/$defs/")
                            if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/")
                            else rewrite(v))
                        for k, v in node.items()}
            if isinstance(node, list):
                return [rewrite(v) for v in node]
            return node

        out[fd.id] = rewrite(schema)
        for name, value in defs.items():
            out[f"{fd.id}.{name}"] = rewrite(value)
    return out
