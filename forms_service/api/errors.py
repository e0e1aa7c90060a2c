"""The one place where errors become HTTP responses.

Every exception raised while handling a request goes through ``handle_error``:

- a :class:`FormsError` keeps its own ``http_status`` and problems;
- a Werkzeug ``HTTPException`` (404, 405, 413, 400...) becomes the matching
  ``FormsError`` with a French message;
- anything else is a bug: logged (type and stack frames only, never the message,
  which could hold personal data) and answered as a 500 ``erreur_interne``.

Under ``/api/`` the answer is JSON ``{"errors": [{"path", "rule", "message"}]}``;
elsewhere a French HTML page (``web/templates/erreur.html``).
"""

from __future__ import annotations

import traceback

from flask import Flask, current_app, has_request_context, jsonify, render_template, request
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DatabaseError as SQLDatabaseError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from forms_service.errors import (BadRequest, DatabaseUnavailable, Forbidden, FormsError,
                                  IdempotencyConflict,
                                  NotFound, PayloadTooLarge, Problem, TooManyRequests,
                                  UnsupportedMediaType, problem_from_pydantic)
from forms_service.logging_setup import get_logger

log = get_logger(__name__)

API_PREFIX = "/api/"


class ErrorItem(BaseModel):
    path: str
    rule: str
    message: str


class ErrorBody(BaseModel):
    """Body of every API error response."""

    errors: list[ErrorItem]


class MethodNotAllowed(FormsError):
    http_status = 405
    exit_code = 2
    rule = "methode_non_autorisee"


class InternalError(FormsError):
    http_status = 500
    exit_code = 70
    rule = "erreur_interne"


_HTTP_MESSAGES = {
    400: (BadRequest, "Requête invalide"),
    404: (NotFound, "Ressource introuvable"),
    405: (MethodNotAllowed, "Méthode non autorisée pour cette adresse"),
    409: (IdempotencyConflict, "Conflit avec une requête précédente"),
    413: (PayloadTooLarge, "Requête trop volumineuse"),
    415: (UnsupportedMediaType, "Type de contenu non pris en charge : application/json attendu"),
    429: (TooManyRequests, "Trop de tentatives : réessayez dans une minute"),
}


def _from_http(exc: HTTPException) -> FormsError:
    code = exc.code or 500
    if code == 403:
        return Forbidden("Accès refusé")
    if code in _HTTP_MESSAGES:
        cls, message = _HTTP_MESSAGES[code]
        if code == 413:
            # the request's own limit when a route raised it (the batches' MAX_BATCH_BYTES)
            limit = (request.max_content_length if has_request_context() else None) or \
                current_app.config.get("MAX_CONTENT_LENGTH")
            if limit:
                message = f"{message} (maximum {limit // (1024 * 1024)} Mio)"
        return cls(message)
    err = FormsError(f"Erreur HTTP {code}", rule=f"http_{code}")  # Werkzeug's text is English
    err.http_status = code
    return err


def _log_bug(exc: BaseException) -> None:
    frames = [f"{f.filename}:{f.lineno} in {f.name}"
              for f in traceback.extract_tb(exc.__traceback__)]
    log.error("erreur_interne", exc_type=type(exc).__name__, method=request.method,
              url_rule=str(request.url_rule) if request.url_rule else None, frames=frames[-15:])


def as_forms_error(exc: BaseException) -> FormsError:
    if isinstance(exc, FormsError):
        return exc
    if isinstance(exc, HTTPException):
        return _from_http(exc)
    if isinstance(exc, (OperationalError, SQLDatabaseError)) and not isinstance(exc, IntegrityError):
        # the database is down or damaged, wherever it was read (authentication included)
        log.warning("database_unavailable", exc_type=type(exc).__name__)
        return DatabaseUnavailable()
    return InternalError("Erreur interne du service")


def wants_json() -> bool:
    return request.path.startswith(API_PREFIX) or request.path.rstrip("/") == API_PREFIX.rstrip("/")


def handle_error(exc: BaseException):
    # flask-openapi3 aborts with a ready response (built by validation_error_callback).
    if isinstance(exc, HTTPException) and exc.response is not None:
        return exc.response
    err = as_forms_error(exc)
    if err.http_status >= 500:
        _log_bug(exc)
    elif not isinstance(exc, HTTPException):
        log.info("requete_refusee", rule=err.problems[0].rule, status=err.http_status,
                 method=request.method, url_rule=str(request.url_rule) if request.url_rule else None)
    headers = {}
    if isinstance(exc, HTTPException) and exc.code == 405:
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
    if wants_json():
        return jsonify(err.as_body()), err.http_status, headers
    return render_template("erreur.html", status=err.http_status, problems=err.problems), \
        err.http_status, headers


def validation_error_callback(exc: ValidationError):
    """flask-openapi3 request validation (path, query, body) → our 400 error body, in
    French (the one table: ``forms_service.errors.PYDANTIC_MESSAGES``)."""
    problems = []
    body = request.get_json(silent=True)
    for e in exc.errors(include_url=False, include_input=False):
        loc = [str(p) for p in e.get("loc", ())]
        if not isinstance(body, (dict, list)) and e.get("type") in _OBJECT_TYPES and len(loc) <= 1:
            problems.append(Problem("", BadRequest.rule,
                                    "Le corps de la requête doit être un objet JSON "
                                    "(Content-Type: application/json)"))
        else:
            p = problem_from_pydantic(e, ".".join(loc))
            problems.append(Problem(p.path, BadRequest.rule, f"Paramètre invalide : {p.message}"))
    err = BadRequest("Requête invalide", problems=list(dict.fromkeys(problems)) or None)
    response = jsonify(err.as_body())
    response.status_code = err.http_status
    return response


_OBJECT_TYPES = {"dict_type", "model_type", "model_attributes_type", "list_type"}


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(Exception, handle_error)
