"""LibreOffice on this machine: where ``soffice`` is, and the environment it runs in.

Also the French messages every PDF conversion path gives when LibreOffice is missing
or does not start (the DOCX stays available).
"""

from __future__ import annotations

import os
import shutil

SOFFICE_CANDIDATES = ("soffice", "libreoffice", "/usr/lib/libreoffice/program/soffice",
                      "/opt/libreoffice/program/soffice")

MSG_MISSING = ("LibreOffice n'est pas installé : la production de PDF est indisponible "
               "(le DOCX reste disponible).")
MSG_NO_UNO = ("Le module Python « uno » de LibreOffice (paquet python3-uno) est introuvable : "
              "la production de PDF est indisponible (le DOCX reste disponible).")
MSG_NO_START = ("LibreOffice ne démarre pas : la production de PDF est indisponible "
                "(le DOCX reste disponible).")


def find_soffice(soffice: str | os.PathLike | None = None) -> str | None:
    """Path of the ``soffice`` executable, or None.

    ``soffice`` (or the ``FORMS_SOFFICE`` environment variable) names it explicitly;
    then it is the only candidate, so a wrong setting is reported, not papered over.
    """
    explicit = soffice if soffice is not None else os.environ.get("FORMS_SOFFICE")
    candidates = (os.fspath(explicit),) if explicit else SOFFICE_CANDIDATES
    for cand in candidates:
        found = shutil.which(cand)
        if found:
            return found
    return None


def libreoffice_available(soffice: str | os.PathLike | None = None) -> bool:
    """True when a LibreOffice ``soffice`` executable is there (cold conversions work).

    The warm pool also needs the ``uno`` Python module (see
    :func:`forms_service.render.uno_env.prepare_server_env`); without it, a pool created
    with ``cold_fallback=True`` converts with ``soffice``.
    """
    return find_soffice(soffice) is not None


def clean_env() -> dict[str, str]:
    """Environment for LibreOffice and Debian's Python: without the project venv's settings."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONSTARTUP")}
