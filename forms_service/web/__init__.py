"""French web pages: the référent's pages at ``/`` and the SLAI desk at ``/slai`` (``desk``).

Templates live in ``web/templates`` (``base.html`` holds the header with the
département's name and logo), static files in ``web/static``.
"""

from __future__ import annotations

from flask import Flask, current_app

from forms_service.web.referent import bp as referent_bp


def register(app: Flask) -> None:
    app.register_blueprint(referent_bp)
    from forms_service.web import correspondant, mes_demandes

    app.register_blueprint(correspondant.bp)     # the fiche de liaison's circuit (issue 12)
    app.register_blueprint(mes_demandes.bp)
    from forms_service.web import ep

    app.register_blueprint(ep.bp)                # the équipe pluridisciplinaire (issue 13)
    from forms_service.web import decision, structure

    app.register_blueprint(decision.bp)          # the Président's decision (issue 13)
    app.register_blueprint(structure.bp)         # the structures' inbox (issue 13)
    from forms_service.web import admin, admin_directory, auth, desk

    auth.init_app(app)          # /connexion, /deconnexion, password links
    admin.init_app(app)         # /administration/ (accounts)
    desk.init_app(app)          # /slai (the SLAI desk)
    admin_directory.init_app(app)

    @app.context_processor
    def _inject_departement():
        settings = current_app.extensions["forms_service.settings"]
        return {"departement_name": settings.departement_name,
                "has_logo": settings.departement_logo is not None}
