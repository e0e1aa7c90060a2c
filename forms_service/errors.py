"""The service's one error hierarchy.

Every failure a user can cause or meet is a :class:`FormsError`. The HTTP layer
(``forms_service.api.errors``) and the CLI (``forms_service.cli``) each map the
hierarchy in one place, so a new error type gets its status code and exit code
by choosing its parent, not by adding ``try`` blocks around call sites.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


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


class Unauthorized(FormsError):
    """No valid credentials: no API key or a wrong one, or no session."""

    http_status = 401
    exit_code = 2
    rule = "cle_api_invalide"


class Forbidden(FormsError):
    """Authenticated, but the key's scopes (or the session's roles) do not allow this."""

    http_status = 403
    exit_code = 2
    rule = "acces_refuse"


class Conflict(FormsError):
    """The thing to create exists already (an account's e-mail, a key's name)."""

    http_status = 409
    exit_code = 2
    rule = "existe_deja"


class TransitionRefused(Conflict):
    """A step the fiche de liaison's circuit does not allow in the request's state now."""

    rule = "transition_interdite"


class ReviewLeased(Conflict):
    """Another agent is reviewing this record now (their lease has not expired)."""

    rule = "verification_en_cours"


class TooManyRequests(FormsError):
    http_status = 429
    exit_code = 2
    rule = "trop_de_tentatives"


class TemplateError(FormsError):
    """A DOCX template is inconsistent with its form definition (a contract break)."""

    http_status = 500
    exit_code = 1
    rule = "modele_invalide"


class UnsupportedMediaType(BadRequest):
    """A body sent with another Content-Type than the endpoint reads (JSON)."""

    http_status = 415
    rule = "type_de_contenu"


class IdempotencyConflict(FormsError):
    """An ``Idempotency-Key`` reused for another request than the one it first named."""

    http_status = 409
    exit_code = 2
    rule = "cle_idempotence_reutilisee"


# -- pydantic's errors in French: the one table ---------------------------------
#
# Every message a user reads about a value that does not fit a model (the form's data,
# a query parameter, a path) comes from here: the form models (``catalogue.model``) and
# the API's request validation (``api.errors``) both call :func:`problem_from_pydantic`.
# ``{name}`` placeholders are filled from the error's context; a type missing from the
# table falls back on its family (``*_type``/``*_parsing``: a type error) and never on
# pydantic's English text (``tests/test_hardening_messages.py`` walks every error type).

_EXPECTED = {
    "string": "du texte", "bool": "vrai ou faux (true, false)", "int": "un nombre entier",
    "float": "un nombre", "decimal": "un nombre", "list": "une liste", "tuple": "une liste",
    "set": "une liste", "frozen_set": "une liste", "deque": "une liste", "iterable": "une liste",
    "dict": "un objet", "model": "un objet", "model_attributes": "un objet", "mapping": "un objet",
    "dataclass": "un objet", "date": "une date AAAA-MM-JJ", "datetime": "une date et heure ISO 8601",
    "time": "une heure HH:MM", "time_delta": "une durée", "url": "une adresse web",
    "uuid": "un identifiant UUID", "bytes": "du texte", "enum": "une valeur de la liste",
}

PYDANTIC_MESSAGES: dict[str, tuple[str, str]] = {
    # codes and lists
    "literal_error": ("code_inconnu", "Code inconnu : valeurs admises {expected}"),
    "enum": ("code_inconnu", "Code inconnu : valeurs admises {expected}"),
    "code_inconnu": ("code_inconnu", "Code inconnu « {value} » (liste {liste})"),
    "doublon": ("doublon", "Une même case est cochée deux fois"),
    "caractere_interdit": ("caractere_interdit", "Caractère interdit ({codepoint}) : un document "
                           "ne peut pas contenir de caractère de contrôle"),
    "extra_forbidden": ("champ_inconnu", "Champ inconnu pour ce formulaire"),
    "missing": ("champ_obligatoire", "Champ obligatoire"),
    "too_long": ("nombre_maximal", "Trop de lignes : {max_length} au plus"),
    "too_short": ("nombre_minimal", "Pas assez d'éléments : {min_length} au moins"),
    # lengths and bounds
    "string_too_long": ("longueur_maximale",
                        "Texte trop long pour la case imprimée ({max_length} caractères au plus)"),
    "string_too_short": ("longueur_minimale", "Texte trop court ({min_length} caractères au moins)"),
    "string_pattern_mismatch": ("format_invalide", "Format invalide"),
    "string_unicode": ("caractere_interdit", "Caractère interdit (demi-paire UTF-16 isolée) : un "
                       "document ne peut pas contenir de caractère de contrôle"),
    "string_not_ascii": ("format_invalide", "Seuls les caractères ASCII sont admis"),
    "greater_than_equal": ("valeur_hors_bornes", "Valeur trop petite (minimum {ge})"),
    "greater_than": ("valeur_hors_bornes", "Valeur trop petite (supérieure à {gt} attendue)"),
    "less_than_equal": ("valeur_hors_bornes", "Valeur trop grande (maximum {le})"),
    "less_than": ("valeur_hors_bornes", "Valeur trop grande (inférieure à {lt} attendue)"),
    "multiple_of": ("valeur_hors_bornes", "Valeur invalide (multiple de {multiple_of} attendu)"),
    "finite_number": ("type_invalide", "Type invalide : un nombre fini attendu"),
    "int_parsing_size": ("valeur_hors_bornes", "Nombre trop grand"),
    "int_from_float": ("type_invalide", "Type invalide : un nombre entier attendu"),
    "bool_parsing": ("type_invalide", "Type invalide : vrai ou faux (true, false) attendu"),
    # dates
    "date_parsing": ("date_invalide", "Date invalide : attendue au format AAAA-MM-JJ (ISO 8601)"),
    "date_from_datetime_parsing": ("date_invalide",
                                   "Date invalide : attendue au format AAAA-MM-JJ (ISO 8601)"),
    "date_from_datetime_inexact": ("date_invalide",
                                   "Date invalide : attendue au format AAAA-MM-JJ (ISO 8601)"),
    "date_type": ("date_invalide", "Date invalide : attendue au format AAAA-MM-JJ (ISO 8601)"),
    "date_past": ("date_invalide", "La date doit être passée"),
    "date_future": ("date_invalide", "La date doit être à venir"),
    "datetime_past": ("date_invalide", "La date doit être passée"),
    "datetime_future": ("date_invalide", "La date doit être à venir"),
    "timezone_naive": ("date_invalide", "La date et heure ne doit pas porter de fuseau horaire"),
    "timezone_aware": ("date_invalide", "La date et heure doit porter un fuseau horaire"),
    "timezone_offset": ("date_invalide", "Fuseau horaire inattendu"),
    # JSON itself
    "json_invalid": ("json_invalide", "JSON invalide"),
    "json_type": ("json_invalide", "JSON invalide : texte attendu"),
    "recursion_loop": ("profondeur_maximale", "Données trop imbriquées"),
    "recursion_depth_exceeded": ("profondeur_maximale", "Données trop imbriquées"),
    "union_tag_invalid": ("type_invalide", "Type d'objet inconnu"),
    "union_tag_not_found": ("type_invalide", "Type d'objet absent"),
    "none_required": ("type_invalide", "Aucune valeur attendue (null)"),
    "set_item_not_hashable": ("type_invalide", "Élément de liste invalide"),
    "url_too_long": ("longueur_maximale", "Adresse web trop longue"),
    "decimal_max_digits": ("valeur_hors_bornes", "Trop de chiffres ({max_digits} au plus)"),
    "decimal_max_places": ("valeur_hors_bornes", "Trop de décimales ({decimal_places} au plus)"),
    "decimal_whole_digits": ("valeur_hors_bornes", "Trop de chiffres avant la virgule"),
    "frozen_field": ("champ_non_modifiable", "Champ non modifiable"),
    "frozen_instance": ("champ_non_modifiable", "Objet non modifiable"),
}

GENERIC_MESSAGE = ("valeur_invalide", "Valeur invalide pour ce champ")


def _family(error_type: str) -> str | None:
    for suffix in ("_type", "_parsing", "_from_date_parsing", "_str_parsing"):
        if error_type.endswith(suffix):
            return error_type.removesuffix(suffix).removesuffix("_exact")
    return None


def _format_ctx(ctx: dict) -> dict:
    out = {}
    for k, v in ctx.items():
        if k == "expected" and isinstance(v, str):
            v = v.replace("' or '", "' ou '")
        out[k] = ", ".join(repr(x) for x in v) if isinstance(v, (list, tuple)) else v
    return out


def problem_from_pydantic(error: dict, path: str) -> Problem:
    """One pydantic error (an item of ``ValidationError.errors()``) as a French problem."""
    etype = error.get("type", "")
    if etype in PYDANTIC_MESSAGES:
        rule, template = PYDANTIC_MESSAGES[etype]
    elif (family := _family(etype)) is not None:
        expected = _EXPECTED.get(family)
        rule = "date_invalide" if family in ("date", "datetime", "time") else "type_invalide"
        template = (f"Type invalide : {expected} attendu" if expected else "Type invalide")
    else:
        rule, template = GENERIC_MESSAGE
    try:
        message = template.format(**_format_ctx(dict(error.get("ctx") or {})))
    except (KeyError, IndexError, ValueError):  # context missing: drop the parts that need it
        message = _PLACEHOLDER_PART.sub("", template).strip()
        if "{" in message or not message:
            message = GENERIC_MESSAGE[1]
    return Problem(path, rule, message)


_PLACEHOLDER_PART = re.compile(r"\s*(\([^)]*\{[^}]*\}[^)]*\)|«[^»]*\{[^}]*\}[^»]*»|:[^:]*\{[^}]*\}.*$)")
