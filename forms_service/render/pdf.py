"""DOCX → PDF through LibreOffice: the names the rest of the service imports.

The work is done in modules of one idea each:

=====================  ==========================================================
``soffice``            where LibreOffice is; its environment; the French messages
``uno_env``            the ``.venv-uno`` the unoserver servers run in
``conversion``         the errors and checks of any conversion; the test document
``processes``          finding and stopping LibreOffice's processes (psutil)
``convert_cold``       one new ``soffice`` per document (baseline and fallback)
``pool_instance``      one unoserver + LibreOffice of the pool
``pool``               :class:`ConverterPool`, the warm pool
``pool_registry``      ``get_pool``: one shared pool per options in a process
``pdf_cli``            ``python -m forms_service.render.pdf_cli --prepare|--check``
=====================  ==========================================================

See ``docs/pdf-conversion.md`` for figures and operations.
"""

from __future__ import annotations

from .conversion import ConversionFailed, ConversionTimeout, pdf_page_count, test_docx
from .convert_cold import cold_convert
from .pool import MSG_CLOSED, ConverterPool
from .pool_registry import get_pool, pool_options
from .processes import group_members, kill_group
from .soffice import MSG_MISSING, MSG_NO_START, MSG_NO_UNO, find_soffice, libreoffice_available
from .uno_env import prepare_server_env

__all__ = [
    "ConversionFailed", "ConversionTimeout", "ConverterPool", "MSG_CLOSED", "MSG_MISSING",
    "MSG_NO_START", "MSG_NO_UNO", "cold_convert", "find_soffice", "get_pool", "group_members",
    "kill_group", "libreoffice_available", "pdf_page_count", "pool_options",
    "prepare_server_env", "test_docx",
]
