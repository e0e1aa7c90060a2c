"""The service's one error hierarchy.

Every failure a user can cause or meet is a :class:`FormsError`. The HTTP layer
(``forms_service.api.errors``) and the CLI (``forms_service.cli``) each map the
hierarchy in one place, so a new error type gets its status code and exit code
by choosing its parent, not by adding ``try`` blocks around call sites.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One thing wrong with some input: where, which rule, and a French message.

    ``path`` uses the project's convention (dotted, 0-based list indices, ``""``
    for the whole document); ``rule`` is a stable code other systems may match on.
    """

    path: str
    rule: str
    message: str
    severity: str = "error"

    def as_dict(self, with_severity: bool = True) -> dict:
        d = {"path": self.path, "rule": self.rule, "message": self.message}
        if with_severity:
            d["severity"] = self.severity
        return d


class FormsError(Exception):
    """Base of every domain error. ``http_status`` and ``exit_code`` drive the mappings."""

    http_status = 400
    exit_code = 2
    rule = "erreur"

    def __init__(self, message: str, *, path: str = "", rule: str | None = None,
                 problems: list[Problem] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = problems or [Problem(path, rule or self.rule, message)]

    def as_body(self) -> dict:
        return {"errors": [p.as_dict(with_severity=False) for p in self.problems]}


class ValidationFailed(FormsError):
    """The data does not fit the form's model (types, codes, dates, lengths) or,
    in strict mode, breaks an error-level business rule."""

    http_status = 422
    exit_code = 1
    rule = "donnees_invalides"

    def __init__(self, problems: list[Problem], message: str = "Données invalides"):
        super().__init__(message, problems=problems)


class UnknownForm(FormsError):
    http_status = 404
    exit_code = 2
    rule = "formulaire_inconnu"

    def __init__(self, form_id: str):
        super().__init__(f"Formulaire inconnu : « {form_id} »", path="form")
        self.form_id = form_id


class NotAForm(FormsError):
    """A reference list (Annexes 1, 4, 6) was asked for something only forms do."""

    http_status = 400
    exit_code = 2
    rule = "liste_de_reference"

    def __init__(self, form_id: str, action: str = "valider"):
        super().__init__(
            f"« {form_id} » est une liste de référence : impossible de la {action}", path="form")


class BadRequest(FormsError):
    """Input that cannot be read at all: not JSON, wrong shape, too large."""

    http_status = 400
    exit_code = 2
    rule = "requete_invalide"


class PayloadTooLarge(BadRequest):
    http_status = 413
    rule = "taille_maximale"


class BadDocument(FormsError):
    """A file handed to the parsers that cannot be read (corrupt, encrypted, hostile)."""

    http_status = 422
    exit_code = 2
    rule = "document_illisible"


class ComponentMissing(FormsError):
    """A component the request needs is not installed or not running (LibreOffice)."""

    http_status = 503
    exit_code = 3
    rule = "composant_indisponible"


class DatabaseUnavailable(FormsError):
    """The database cannot be read (down, unreachable, file gone): nothing read from it
    can be trusted, so the call fails rather than go on without it."""

    http_status = 503
    exit_code = 3
    rule = "base_indisponible"

    def __init__(self, message: str = "Base de données indisponible : les documents émis ne peuvent "
                                      "pas être relus, réessayez plus tard"):
        super().__init__(message)


class NotFound(FormsError):
    http_status = 404
    exit_code = 2
    rule = "introuvable"


class TemplateError(FormsError):
    """A DOCX template is inconsistent with its form definition (a contract break)."""

    http_status = 500
    exit_code = 1
    rule = "modele_invalide"
