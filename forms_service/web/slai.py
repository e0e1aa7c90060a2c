"""The SLAI desk (Guichet SLAI): where returned forms are received and read back."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("slai", __name__, url_prefix="/slai", template_folder="templates")


@bp.get("/")
def guichet():
    return render_template("slai.html")
