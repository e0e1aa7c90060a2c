"""Logging: structlog, JSON lines on stderr, personal data masked.

``configure_logging()`` runs once per process (later calls are no-ops unless
``force=True``). The standard library's loggers (Flask, Werkzeug, Waitress,
Alembic, and ours called as ``log.info("x", extra={...})``) go through the same
JSON renderer and the same redaction; their ``extra=`` fields become keys of the
line (``ExtraAdder``), masked like any other.

Redaction is by key: any key naming personal data (``nom``, ``prenom``,
``adresse``, ``num_caf``, ``email``, ``tel``, ``date_naissance``, a form's
``data``...) is replaced by ``"***"`` at any depth, and so is everything under a
``beneficiaire`` key. ``redact()`` is also what ``forms_service.audit`` applies
to the details it stores. Log identifiers (form id, document id, rule codes),
never values typed by or about a person.
"""

from __future__ import annotations

import logging
import re
import sys
import unicodedata
from collections.abc import Mapping
from typing import Any, TextIO

import structlog

MASK = "***"

#: Keys (or ``_``-separated parts of keys) that name personal data.
SENSITIVE_WORDS = frozenset({
    "nom", "noms", "prenom", "prenoms", "adresse", "adresses", "email", "emails", "mail", "courriel",
    "tel", "telephone", "portable", "mobile", "naissance", "data", "nir", "iban", "num_caf",
    "numero_caf", "matricule", "nss", "password", "mot_de_passe", "api_key", "cle",
})
#: Keys whose whole subtree is personal data.
SENSITIVE_SUBTREES = frozenset({"beneficiaire", "beneficiaires", "conjoint", "record"})

_SPLIT = re.compile(r"[^a-z0-9]+")
_configured = False


def _normalise(key: str) -> str:
    key = unicodedata.normalize("NFKD", str(key)).encode("ascii", "ignore").decode()
    # camelCase -> camel_case so "dateNaissance" is seen too
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()


def is_sensitive_key(key: Any) -> bool:
    norm = _normalise(str(key))
    if norm in SENSITIVE_WORDS or norm in SENSITIVE_SUBTREES:
        return True
    parts = [p for p in _SPLIT.split(norm) if p]
    if any(p in SENSITIVE_WORDS for p in parts):
        return True
    # two-word names such as num_caf / numero_caf
    return any(f"{a}_{b}" in SENSITIVE_WORDS for a, b in zip(parts, parts[1:]))


def redact(value: Any) -> Any:
    """A copy of ``value`` with personal data masked (mappings and lists, any depth)."""
    if isinstance(value, Mapping):
        return {k: (MASK if is_sensitive_key(k) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


_STRUCTLOG_KEYS = frozenset({"event", "level", "timestamp", "logger", "exc_info", "stack_info",
                             "_record", "_from_structlog"})


def redact_processor(logger: Any, method_name: str, event_dict: dict) -> dict:
    """structlog processor: mask personal data in every key of the event."""
    for key in list(event_dict):
        if key in _STRUCTLOG_KEYS:
            continue
        event_dict[key] = MASK if is_sensitive_key(key) else redact(event_dict[key])
    return event_dict


def _shared_processors(*, foreign: bool = False) -> list:
    """The processors every line goes through; ``foreign``: a standard-library record,
    whose ``extra=`` fields are taken in before the redaction."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        *([structlog.stdlib.ExtraAdder()] if foreign else []),
        redact_processor,
    ]


class _Handler(logging.StreamHandler):
    """A stream handler that drops a line once its stream is closed (a test runner closes
    the stderr it lent while the interpreter exits and the services log their closing),
    instead of printing « Logging error » tracebacks."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self.stream, "closed", False):
            return
        super().emit(record)


def configure_logging(level: str | int = "INFO", stream: TextIO | None = None,
                      force: bool = False) -> None:
    """Configure structlog and the standard library's root logger, once."""
    global _configured
    if _configured and not force:
        return
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            level = logging.INFO

    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(foreign=True),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False, default=str),
        ],
    )
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("forms_service")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "forms_service"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Alembic narrates every start-up migration check at INFO: keep its warnings only.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    _configured = True


def get_logger(name: str | None = None) -> Any:
    return structlog.stdlib.get_logger(name)
