"""Forms service of the RSA programme: renders the département's official forms
(DOCX/PDF) and reads filled or scanned forms back into data.

Entry points: ``forms_service.app.create_app`` (web service) and
``forms_service.cli.main`` (the ``forms-service`` command).
"""

__version__ = "0.1.0"

