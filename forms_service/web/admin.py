"""The administration page, accounts part: ``/administration/``.

Lists the accounts, adds one (without a password: the page shows a one-time
link for the person to set it), disables one, and triggers a password reset
(the one-time link is shown to the administrator, once). Needs the ``admin``
scope, i.e. the ``administrateur`` role (``accounts.authn.ENDPOINT_SCOPES``).
Other administration sections add their pages to this blueprint's prefix and
a link to ``ADMIN_SECTIONS``.
"""

from __future__ import annotations

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import EmailField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from forms_service import db
from forms_service.accounts import users
from forms_service.audit import record_event
from forms_service.errors import FormsError
from forms_service.principal import ROLES, current_principal

bp = Blueprint("admin", __name__, url_prefix="/administration", template_folder="templates")

#: (label, endpoint) of each section of the administration page, shown as its menu.
ADMIN_SECTIONS: list[tuple[str, str]] = [("Comptes", "admin.comptes"), ("Webhooks", "admin.webhooks")]

ROLE_LABELS = {
    "referent": "Référent",
    "agent_slai": "Agent SLAI",
    "correspondant": "Correspondant",
    "secretariat_ep": "Secrétariat EP",
    "decideur": "Décideur",
    "structure": "Structure",
    "administrateur": "Administrateur",
}


class UserForm(FlaskForm):
    email = EmailField("Adresse e-mail", validators=[DataRequired("Indiquez l'adresse e-mail.")])
    nom = StringField("Nom affiché", validators=[Optional(), Length(max=128)])
    roles = SelectMultipleField("Rôles", choices=[SelectChoice(r, ROLE_LABELS[r]) for r in ROLES],
                                validators=[DataRequired("Choisissez au moins un rôle.")],
                                option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False))
    territoire = StringField("Territoire (code)", validators=[Optional(), Length(max=64)])
    organisme = StringField("Organisme (code)", validators=[Optional(), Length(max=64)])


class ActionForm(FlaskForm):
    """The CSRF token of the per-row buttons (disable, reset)."""


def _reset_link(token: str) -> str:
    return url_for("auth.reinitialisation", token=token, _external=True)


@bp.route("/", methods=["GET", "POST"])
def comptes():
    form = UserForm()
    error = link = link_for = None
    principal = current_principal()
    if not principal.open_mode and form.validate_on_submit():
        try:
            with db.session() as s:
                user = users.save_user(s, form.email.data, form.roles.data,
                                       display_name=form.nom.data or "",
                                       territoire=form.territoire.data or None,
                                       organisme=form.organisme.data or None)
                token = users.start_password_reset(s, user)
                user_id, email = user.id, user.email
        except FormsError as err:
            error = err.message
        else:
            record_event(principal.actor, "compte.cree", user_id=user_id, roles=form.roles.data)
            link, link_for = _reset_link(token), email
            form = UserForm(formdata=None)
    elif request.method == "POST" and form.errors:
        error = " ".join(m for msgs in form.errors.values() for m in msgs)
    return _page(form, error=error, link=link, link_for=link_for), (400 if error else 200)


@bp.post("/comptes/<int:user_id>/desactiver")
def desactiver(user_id: int):
    with db.session() as s:
        user = s.get(users.User, user_id)
        if user is None:
            return _page(UserForm(formdata=None), error="Compte introuvable."), 404
        user.active = False
    record_event(current_principal().actor, "compte.desactive", user_id=user_id)
    return redirect(url_for("admin.comptes"))


@bp.post("/comptes/<int:user_id>/reinitialiser")
def reinitialiser(user_id: int):
    with db.session() as s:
        user = s.get(users.User, user_id)
        if user is None or not user.active:
            return _page(UserForm(formdata=None), error="Compte introuvable ou désactivé."), 404
        token = users.start_password_reset(s, user)
        email = user.email
    record_event(current_principal().actor, "compte.reinitialisation", user_id=user_id)
    return _page(UserForm(formdata=None), link=_reset_link(token), link_for=email)


def _page(form: UserForm, *, error: str | None = None, link: str | None = None,
          link_for: str | None = None) -> str:
    with db.session() as s:
        accounts = [users.user_summary(u) for u in users.list_users(s)]
    return render_template("admin_comptes.html", form=form, action=ActionForm(),
                           accounts=accounts, error=error, link=link, link_for=link_for,
                           role_labels=ROLE_LABELS, sections=ADMIN_SECTIONS,
                           open_mode=current_principal().open_mode)


@bp.get("/webhooks")
def webhooks():
    """The webhooks' delivery log (issue 13): each event with its attempts; replay."""
    from forms_service.circuit.machine import machine
    from forms_service.config import current_settings
    from forms_service.webhooks.log import events_page

    demande = request.args.get("demande", type=int)
    failed = request.args.get("echec") == "1"
    page = max(1, request.args.get("page", 1, type=int) or 1)
    with db.session() as s:
        result = events_page(s, demande=demande, failed=failed, page=page)
    settings = current_settings()
    return render_template("admin_webhooks.html", result=result, demande=demande, failed=failed,
                           action=ActionForm(), sections=ADMIN_SECTIONS,
                           configured=bool(settings.webhook_url), url=settings.webhook_url,
                           replayed=request.args.get("renvoi"), states=machine().states,
                           steps=machine().steps)


@bp.post("/webhooks/<int:event_id>/renvoyer")
def webhook_replay(event_id: int):
    from forms_service.config import current_settings
    from forms_service.webhooks.dispatch import replay

    if not ActionForm().validate_on_submit():
        return redirect(url_for("admin.webhooks"))
    replay(current_principal(), event_id, current_settings())
    return redirect(url_for("admin.webhooks", renvoi=event_id))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
