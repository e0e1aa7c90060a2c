"""Signing in and out: ``/connexion`` (fields ``email`` and ``mot_de_passe``),
``/deconnexion`` (POST, with its CSRF token like every form), and
``/reinitialisation/<token>`` where a person sets a password from the one-time
link an administrator gave them.

Failed logins are limited (Flask-Limiter): 5 per minute per (IP address, e-mail);
the sixth within the minute answers 429. The limiter's storage is memory by
default (``RATELIMIT_STORAGE_URI`` to share it): the count is per process.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, Flask, current_app, redirect, render_template, request, url_for
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from forms_service import db
from forms_service.accounts import authn, users
from forms_service.accounts.passwords import MIN_LENGTH, verify_password
from forms_service.audit import record_event
from forms_service.errors import FormsError
from forms_service.logging_setup import get_logger

log = get_logger(__name__)

bp = Blueprint("auth", __name__, template_folder="templates")
limiter = Limiter(key_func=get_remote_address, default_limits=[], storage_uri="memory://")
LIMITER_SCOPE_KEY = "forms_service.limiter_scope"

LOGIN_LIMIT = "5 per minute"
LOGIN_REFUSED = "Adresse e-mail ou mot de passe incorrect."


class LoginForm(FlaskForm):
    email = EmailField("Adresse e-mail", validators=[DataRequired("Indiquez votre adresse e-mail.")])
    mot_de_passe = PasswordField("Mot de passe",
                                 validators=[DataRequired("Indiquez votre mot de passe.")])


class NewPasswordForm(FlaskForm):
    mot_de_passe = PasswordField("Nouveau mot de passe", validators=[
        DataRequired("Indiquez un mot de passe."),
        Length(min=MIN_LENGTH, message=f"Au moins {MIN_LENGTH} caractères.")])
    confirmation = PasswordField("Confirmation", validators=[
        EqualTo("mot_de_passe", message="Les deux mots de passe diffèrent.")])


def _login_key() -> str:
    """Failed attempts count per (app, IP address, e-mail)."""
    email = users.normalize_email(request.form.get("email", ""))
    return f"{current_app.extensions[LIMITER_SCOPE_KEY]}|{get_remote_address()}|{email}"


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or ``https://...``)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("referent.accueil")


@bp.route("/connexion", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT, key_func=_login_key, methods=["POST"],
               deduct_when=lambda response: response.status_code != 302,
               error_message="Trop de tentatives de connexion : réessayez dans une minute.")
def connexion():
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        with db.session() as s:
            user = users.get_user(s, form.email.data)
            ok = verify_password(user.password_hash if user else None, form.mot_de_passe.data)
            if ok and user.active:
                user.roles  # loaded before the session closes
        if ok and user.active:
            authn.login(user)
            record_event(f"user:{user.id}", "compte.connexion")
            return redirect(_safe_next(request.args.get("suivant")))
        log.info("connexion_refusee", user_id=user.id if user else None)
        error = LOGIN_REFUSED
    elif request.method == "POST":
        error = "Formulaire incomplet ou expiré : recommencez."
    status = 401 if request.method == "POST" else 200
    return render_template("connexion.html", form=form, error=error), status


@bp.post("/deconnexion")
def deconnexion():
    # CSRFProtect has checked the token before we get here.
    logout_user()
    from flask import session

    session.clear()
    return redirect(url_for("auth.connexion"))


@bp.route("/reinitialisation/<token>", methods=["GET", "POST"])
def reinitialisation(token: str):
    form = NewPasswordForm()
    with db.session() as s:
        valid = users.find_reset(s, token) is not None
    if not valid:
        return render_template("reinitialisation.html", form=None), 404
    error = None
    if form.validate_on_submit():
        try:
            with db.session() as s:
                user = users.complete_password_reset(s, token, form.mot_de_passe.data)
                user_id = user.id
        except FormsError as err:
            error = err.message
        else:
            record_event(f"user:{user_id}", "compte.mot_de_passe_defini")
            return redirect(url_for("auth.connexion"))
    return render_template("reinitialisation.html", form=form, error=error)


def init_app(app: Flask) -> None:
    app.extensions[LIMITER_SCOPE_KEY] = secrets.token_hex(8)
    limiter.init_app(app)
    app.register_blueprint(bp)
