"""Forms service of the RSA programme: renders the département's official forms
(DOCX/PDF) and reads filled or scanned forms back into data.

Entry points: ``forms_service.app.create_app`` (web service) and
``forms_service.cli.main`` (the ``forms-service`` command).
"""

__version__ = "0.1.0"


def import_optional(name: str):
    """Import module ``name``, or return ``None`` when that module does not exist
    (yet). An import error *inside* an existing module is a bug and propagates."""
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise
