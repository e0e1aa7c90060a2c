"""French web pages: the référent's pages at ``/`` and the SLAI desk at ``/slai``.

Templates live in ``web/templates`` (``base.html`` holds the header with the
département's name and logo), static files in ``web/static``.
"""

from __future__ import annotations

from flask import Flask, current_app

from forms_service.web.referent import bp as referent_bp
from forms_service.web.slai import bp as slai_bp


def register(app: Flask) -> None:
    app.register_blueprint(referent_bp)
    app.register_blueprint(slai_bp)
    from forms_service.web import admin, admin_directory, auth

    auth.init_app(app)          # /connexion, /deconnexion, password links
    admin.init_app(app)         # /administration/ (accounts)
    admin_directory.init_app(app)

    @app.context_processor
    def _inject_departement():
        settings = current_app.extensions["forms_service.settings"]
        return {"departement_name": settings.departement_name,
                "has_logo": settings.departement_logo is not None}
