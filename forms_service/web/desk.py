"""The SLAI desk (Guichet SLAI, ``/slai``): receive batches, follow their reading, review.

Pages (French, on ``base.html``; scripts in ``web/static/desk.js``, none inline):

- ``/slai/``: the upload form (drag and drop, or a plain file input that works without
  JavaScript) and the territory's batches, with the review queue's size and the
  observed error rate;
- ``/slai/lots/<id>``: one batch, its progress per file and per page, refreshing by
  itself (``desk.js`` polls ``/slai/lots/<id>/etat``; without JavaScript a
  ``<meta http-equiv="refresh">`` in a ``<noscript>``), then its summary;
- ``/slai/verification``: the territory's review queue, worst first;
  ``/slai/verification/suivant`` opens the first one no other agent holds;
- ``/slai/verification/<record id>``: one record's next item: the page crop beside the
  reader's proposal and its reason, settled in one action, keyboard shortcuts shown;
- page images and crops: ``/slai/enregistrements/<id>/pages/<n>.png``,
  ``/slai/enregistrements/<id>/recadrages/<crop id>.png`` (a stored crop),
  ``/slai/enregistrements/<id>/zones/<field path>.png`` (where a field without a crop was
  read), ``/slai/lots/<id>/pages/<page id>.png`` (a received page), each ``inline`` with a
  safe file name.

The upload goes through ``desk.batches.receive``, the code path of ``POST /api/v1/batches``;
the review through ``desk.review``. Everything read goes through ``forms_service.access``
(what a caller may not see answers 404).
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from forms_service import access, db
from forms_service.catalogue import catalogue_for
from forms_service.config import current_settings
from forms_service.desk import page_images, review
from forms_service.errors import NotFound, ReviewLeased
from forms_service.principal import current_principal

bp = Blueprint("slai", __name__, url_prefix="/slai", template_folder="templates")

GIB = 1024 ** 3
#: The desk page's statuses of a received page, in French.
PAGE_STATUS_LABELS = {"pending": "en attente", "record": "lue", "blank": "blanche",
                      "unknown": "non reconnue", "duplicate": "doublon", "error": "erreur"}
BATCH_STATUS_LABELS = {"queued": "en attente", "running": "lecture en cours", "done": "terminé"}
RECORD_STATUS_LABELS = {"valid": "valide", "invalid": "invalide", "needs_review": "à vérifier"}
#: Number keys offered on the review page (1..9).
KEYS = [str(n) for n in range(1, 10)]


def _catalogue():
    return catalogue_for(current_settings().ede_grid)


# --------------------------------------------------------------------------- upload

@bp.get("/")
def guichet():
    from forms_service.desk.models import Batch
    from forms_service.directory.models import Territory

    principal = current_principal()
    with db.session() as s:
        batches = s.scalars(select(Batch).where(access.batch_condition(principal))
                            .order_by(Batch.id.desc()).limit(50)).all()
        views = [_batch_row(s, principal, b) for b in batches]
        queue = review.review_queue(s, principal)
        rate = review.error_rate(s, principal)
        territories = [] if principal.territoire else [
            (t.code, t.name) for t in s.scalars(select(Territory).order_by(Territory.name))]
    return render_template("desk_guichet.html", batches=views, queue_size=len(queue), rate=rate,
                           territories=territories, status_labels=BATCH_STATUS_LABELS,
                           max_batch_gib=_max_batch_bytes() / GIB)


def _batch_row(session, principal, batch) -> dict:
    from forms_service.desk import batches

    view = batches.batch_view(session, principal, batch.id)
    return {**view, "files_count": len(view["files"])}


def _max_batch_bytes() -> int:
    return int(getattr(current_settings(), "max_batch_bytes", GIB))


@bp.post("/lots")
def deposer():
    """The upload form: the same code path as ``POST /api/v1/batches`` (``receive``)."""
    from flask_wtf.csrf import CSRFError, validate_csrf
    from wtforms.validators import ValidationError

    from forms_service.desk import batches

    # This route alone takes a batch's size (MAX_BATCH_BYTES), not MAX_CONTENT_LENGTH: the
    # limit is raised before the body is read, then the CSRF token is checked here.
    request.max_content_length = _max_batch_bytes()
    token = request.form.get("csrf_token")       # 413 here above MAX_BATCH_BYTES
    try:
        validate_csrf(token)
    except ValidationError as exc:   # answered as CSRFProtect answers a missing token
        raise CSRFError(str(exc)) from None
    # each file as Werkzeug spooled it (to disk when large): stored by chunks, never read whole
    uploads = [batches.Upload(f.filename or "", f.stream)
               for f in request.files.getlist("fichiers") if f and (f.filename or f.content_length)]
    uploads = [u for u in uploads if u.name or u.size()]
    territoire = request.form.get("territoire") or None
    batch = batches.receive(current_settings(), current_principal(), uploads, territoire,
                            source="desk")
    return redirect(url_for("slai.lot", batch_id=batch.id), code=303)


@bp.get("/lots/<int:batch_id>")
def lot(batch_id: int):
    from forms_service.desk import batches
    from forms_service.desk.models import BatchFile

    principal = current_principal()
    with db.session() as s:
        view = batches.batch_view(s, principal, batch_id)
        files = s.scalars(select(BatchFile).where(BatchFile.batch_id == batch_id)
                          .order_by(BatchFile.position)).all()
        names = [f.name for f in files]
        page_ids = _page_ids(s, batch_id)
        records = _records_of(s, principal, view["records"])
    return render_template("desk_lot.html", lot=view, names=names, page_ids=page_ids,
                           records=records, page_labels=PAGE_STATUS_LABELS,
                           status_labels=BATCH_STATUS_LABELS, record_labels=RECORD_STATUS_LABELS)


def _page_ids(session, batch_id: int) -> dict[tuple[int, int], int]:
    from forms_service.desk.models import BatchFile, BatchPage

    rows = session.execute(select(BatchFile.position, BatchPage.file_page, BatchPage.id)
                           .join(BatchFile, BatchFile.id == BatchPage.file_id)
                           .where(BatchPage.batch_id == batch_id))
    return {(pos, page): pid for pos, page, pid in rows}


def _records_of(session, principal, record_ids: list[int]) -> list[dict]:
    if not record_ids:
        return []
    rows = session.scalars(access.visible_records(principal).where(db.Record.id.in_(record_ids))
                           .order_by(db.Record.id)).all()
    cat = _catalogue()
    return [{"id": r.id, "form": cat.get(r.form_id).title, "status": r.status, "review": r.review,
             "copy_of": r.copy_of_id} for r in rows]


@bp.get("/lots/<int:batch_id>/etat")
def lot_etat(batch_id: int):
    """The batch's progress as JSON (polled by ``desk.js``): the API's batch view."""
    from forms_service.desk import batches

    with db.session() as s:
        view = batches.batch_view(s, current_principal(), batch_id)
    view["pages"] = [{**p, "label": PAGE_STATUS_LABELS[p["status"]]} for p in view["pages"]]
    view["status_label"] = BATCH_STATUS_LABELS[view["status"]]
    return jsonify(view)


@bp.get("/lots/<int:batch_id>/pages/<int:page_id>.png")
def page_recue(batch_id: int, page_id: int):
    from forms_service.desk.models import BatchFile, BatchPage

    principal = current_principal()
    with db.session() as s:
        access.get_batch(principal, batch_id, s)
        page = s.get(BatchPage, page_id)
        if page is None or page.batch_id != batch_id:
            raise NotFound("Page introuvable", path="page")
        batch_file = s.get(BatchFile, page.file_id)
        png = page_images.page_png(current_settings(), batch_file, page.file_page)
    return _png(png, f"lot-{batch_id}-page-{page_id}.png")


# --------------------------------------------------------------------------- review queue

@bp.get("/verification")
def verification():
    principal = current_principal()
    territoire = request.args.get("territoire") or None
    with db.session() as s:
        queue = review.review_queue(s, principal, territoire=territoire)
        rate = review.error_rate(s, principal, territoire=territoire)
    cat = _catalogue()
    titles = {e.form_id: cat.get(e.form_id).title for e in queue if e.form_id}
    return render_template("desk_file.html", queue=queue, titles=titles, rate=rate,
                           actor=principal.actor)


@bp.get("/verification/suivant")
def suivant():
    """The worst entry no other agent holds (``apres``: the one just skipped, released)."""
    principal = current_principal()
    after = request.args.get("apres", type=int)
    with db.session() as s:
        if after is not None:
            review.release_lease(s, principal, after)
        entry = review.next_entry(s, principal, after=after)
    if entry is None:
        return redirect(url_for("slai.verification"))
    if entry.kind == "page":
        return redirect(url_for("slai.page_non_reconnue", page_id=entry.id))
    return redirect(url_for("slai.verifier", record_id=entry.id))


@bp.get("/verification/<int:record_id>")
def verifier(record_id: int):
    principal = current_principal()
    settings = current_settings()
    q = (request.args.get("q") or "").strip()
    with db.session() as s:
        try:
            row = review.take_lease(s, principal, record_id, settings.review_lease_minutes)
        except ReviewLeased as err:
            return render_template("erreur.html", status=409, problems=err.problems), 409
        context = _review_context(s, principal, row, q)
    if context["item"] is None:
        return redirect(url_for("slai.suivant", apres=record_id))
    return render_template("desk_verifier.html", **context)


def _review_context(session, principal, row, q: str) -> dict:
    from forms_service.desk.models import RecordCrop, RecordPage

    decided = review.decided_items(session, [row.id])[row.id]
    items = review.open_items(row, decided)
    item = items[0] if items else None
    fd = _catalogue().get(row.form_id)
    crops = session.scalars(select(RecordCrop).where(RecordCrop.record_id == row.id)
                            .order_by(RecordCrop.id)).all()
    pages = session.scalars(select(RecordPage).where(RecordPage.record_id == row.id)
                            .order_by(RecordPage.position)).all()
    shown_crops, zone = [], None
    if item is not None and item.kind == "champ":
        shown_crops = [c for c in crops if c.path == item.path]
        evidence = (row.record["fields"][item.path].get("evidence") or [{}])[0]
        if not shown_crops and evidence.get("bbox") and any(p.file_id for p in pages):
            zone = url_for("slai.zone", record_id=row.id, champ=item.path)   # no stored crop
        pages = [p for p in pages if p.number == evidence.get("page")] or pages[:1]
    elif item is not None and item.kind == "beneficiaire":
        shown_crops = [c for c in crops if c.path == "administratif"]
        # without that crop: where the beneficiary's identity was read (name, CAF number...)
        read_at = next((path for path, f in row.record["fields"].items()
                        if path.startswith("beneficiaire.") and (f.get("evidence") or [{}])[0].get("bbox")),
                       None)
        if not shown_crops and read_at and any(p.file_id for p in pages):
            zone = url_for("slai.zone", record_id=row.id, champ=read_at)
        pages = pages[:1]                                  # the administrative part is on page 1
    field_labels = {}
    for i in items:
        if i.path:
            f = review.field_def(fd, i.path)
            field_labels[i.path] = f.label if f is not None else i.path
    context = {"row": row, "fd": fd, "item": item, "items": items, "crops": shown_crops,
               "field_labels": field_labels,
               "zone": zone, "pages": pages, "field": None, "proposal": None, "options": [],
               "candidates": [], "q": q, "filled": [], "status_labels": RECORD_STATUS_LABELS}
    if item is None:
        return context
    if item.kind == "champ":
        f = review.field_def(fd, item.path)
        entry = row.record["fields"][item.path]
        context.update(field=f, proposal=entry.get("value"), confidence=entry.get("confidence"),
                       options=_options(f, entry.get("value")))
    elif item.kind == "beneficiaire":
        context["candidates"] = _candidates(session, principal, row, q)
    elif item.kind == "echantillon":
        context["filled"] = [(path, review.field_def(fd, path), f.get("value"))
                             for path, f in row.record["fields"].items()
                             if f.get("value") not in (None, "", [], False)]
    return context


def _options(f, proposal) -> list[dict]:
    """The choices of a box field, numbered for the keyboard (1..9), the proposal checked."""
    if f is None:
        return []
    if f.type in ("choice", "multi"):
        chosen = proposal if isinstance(proposal, list) else [proposal]
        return [{"value": o.code, "label": o.label, "key": KEYS[i] if i < len(KEYS) else None,
                 "checked": o.code in chosen} for i, o in enumerate(f.options)]
    if f.type in ("bool", "tri"):
        values = [("oui", "Oui", proposal is True), ("non", "Non", proposal is False)]
        if f.type == "tri":
            values.append(("", "Non renseigné", proposal is None))
        return [{"value": v, "label": label, "key": KEYS[i], "checked": checked}
                for i, (v, label, checked) in enumerate(values)]
    return []


def _candidates(session, principal, row, q: str) -> list[dict]:
    """The beneficiaries the agent may pick (access policy), searched by name or CAF number."""
    from sqlalchemy import or_

    from forms_service.beneficiaries.models import Beneficiary

    stmt = access.visible_beneficiaries(principal)
    if row.territoire:
        stmt = stmt.where(Beneficiary.territoire == row.territoire)
    if q:
        like = f"%{q.lower()}%"
        from sqlalchemy import func
        stmt = stmt.where(or_(func.lower(Beneficiary.nom).like(like),
                              func.lower(Beneficiary.prenom).like(like),
                              Beneficiary.num_caf.like(f"%{q}%")))
    rows = session.scalars(stmt.order_by(Beneficiary.nom, Beneficiary.prenom).limit(9)).all()
    return [{"id": b.id, "label": f"{b.nom} {b.prenom}", "num_caf": b.num_caf,
             "date_naissance": b.date_naissance.strftime("%d/%m/%Y"), "key": KEYS[i]}
            for i, b in enumerate(rows)]


@bp.post("/verification/<int:record_id>")
def decider(record_id: int):
    principal = current_principal()
    settings = current_settings()
    item_key = request.form.get("point", "")
    action = request.form.get("action", "corriger")
    if item_key.startswith("champ:"):
        f = review.field_def(_catalogue().get(_form_of(principal, record_id)), item_key[6:])
        value = request.form.getlist("valeur") if f is not None and f.type == "multi" \
            else request.form.get("valeur")
    elif item_key == "echantillon":
        value = request.form.get("champ") or None
        action = "corriger" if value else "confirmer"
    else:
        value = request.form.get("valeur")
    with db.session() as s:
        try:
            outcome = review.decide(s, principal, settings, record_id, item_key,
                                    value=value, action=action)
        except ReviewLeased as err:
            s.rollback()
            return render_template("erreur.html", status=409, problems=err.problems), 409
    if outcome.review == "done":
        return redirect(url_for("slai.suivant", apres=record_id), code=303)
    return redirect(url_for("slai.verifier", record_id=record_id), code=303)


def _form_of(principal, record_id: int) -> str:
    return access.get_record(principal, record_id).form_id


@bp.route("/verification/pages/<int:page_id>", methods=["GET", "POST"])
def page_non_reconnue(page_id: int):
    """« Page non reconnue »: the page and the reader's best guesses; the agent confirms it
    is no form of the service (it stays unknown, accounted for)."""
    from forms_service.desk.models import Batch, BatchPage

    principal = current_principal()
    with db.session() as s:
        if request.method == "POST":
            review.decide_page(s, principal, page_id)
            return redirect(url_for("slai.suivant"), code=303)
        page = s.scalars(select(BatchPage).where(
            BatchPage.id == page_id,
            BatchPage.batch_id.in_(select(Batch.id).where(access.batch_condition(principal))))).first()
        if page is None:
            raise NotFound("Page introuvable", path="page")
        return render_template("desk_page.html", page=page)


# --------------------------------------------------------------------------- images

@bp.get("/enregistrements/<int:record_id>/pages/<int:position>.png")
def image_page(record_id: int, position: int):
    from forms_service.desk.models import BatchFile, RecordPage

    principal = current_principal()
    with db.session() as s:
        access.get_record(principal, record_id, s)
        page = s.scalars(select(RecordPage).where(RecordPage.record_id == record_id,
                                                  RecordPage.position == position)).first()
        batch_file = s.get(BatchFile, page.file_id) if page is not None and page.file_id else None
        if batch_file is None:
            raise NotFound("Page introuvable", path="page")
        png = page_images.page_png(current_settings(), batch_file, page.file_page,
                                   rotation=page.rotation)
    return _png(png, f"enregistrement-{record_id}-page-{position + 1}.png")


@bp.get("/enregistrements/<int:record_id>/zones/<path:champ>.png")
def zone(record_id: int, champ: str):
    """Where a field was read on its page (its evidence's bbox), for a field without a crop."""
    from forms_service.desk.models import BatchFile, RecordPage

    principal = current_principal()
    with db.session() as s:
        row = access.get_record(principal, record_id, s)
        field = (row.record or {}).get("fields", {}).get(champ)
        evidence = ((field or {}).get("evidence") or [{}])[0]
        if not evidence.get("bbox"):
            raise NotFound("Zone introuvable", path="zone")
        pages = s.scalars(select(RecordPage).where(RecordPage.record_id == record_id)
                          .order_by(RecordPage.position)).all()
        page = next((p for p in pages if p.number == evidence.get("page")), None)
        batch_file = s.get(BatchFile, page.file_id) if page is not None and page.file_id else None
        if batch_file is None:
            raise NotFound("Zone introuvable", path="zone")
        png = page_images.zone_png(current_settings(), batch_file, page.file_page,
                                   [float(v) for v in evidence["bbox"]], rotation=page.rotation)
    return _png(png, f"enregistrement-{record_id}-zone.png")


@bp.get("/enregistrements/<int:record_id>/recadrages/<int:crop_id>.png")
def recadrage(record_id: int, crop_id: int):
    from forms_service.desk.models import RecordCrop

    principal = current_principal()
    with db.session() as s:
        access.get_record(principal, record_id, s)
        crop = s.get(RecordCrop, crop_id)
        path = page_images.crop_path(current_settings(), crop) \
            if crop is not None and crop.record_id == record_id else None
    if path is None:
        raise NotFound("Image introuvable", path="recadrage")
    return _png(path.read_bytes(), f"enregistrement-{record_id}-recadrage-{crop_id}.png")


def _png(data: bytes, filename: str) -> Response:
    response = Response(data, mimetype="image/png")
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    # The upload checks its CSRF token itself, after raising the size limit (see deposer).
    app.extensions["csrf"].exempt(deposer)
