"""Rendering as a service: one call from a form id and its data to a recorded document.

    service = get_service(app)              # the app's, made by create_app
    doc = service.render("annexe-7", data, fmt="pdf", actor="mds-arras")
    doc.filename   # "fiche-liaison_2026-11-23_01JD3ZK7S4....pdf"
    doc.findings   # business-rule findings (warnings, and errors unless strict)

What :meth:`RenderService.render` does, in order:

1. ``catalogue.get`` (aliases work). A reference list (Annexes 1, 4, 6) renders its
   code list; it takes no data.
2. The data is checked against the form's model: a wrong type, an unknown code, a
   malformed date or a text longer than its printed box raises
   :class:`~forms_service.errors.ValidationFailed` (422 / exit 1) naming every path.
   An empty or missing body is the blank form.
3. The business rules run. Their findings come back with the document and do not
   block, unless ``strict``: then error-level findings raise ``ValidationFailed``.
4. A new document id; the DOCX (header QR) or the PDF (the values written on LibreOffice's
   print of the blank form when they cannot change its layout — ``render/fastpath.py`` —
   else the DOCX for print → warm LibreOffice pool; then the page stamp with QR codes and
   footer → optionally fillable).
5. The file is stored under ``settings.storage_dir``, and the
   :class:`~forms_service.db.IssuedDocument` row and its audit event (identifiers and
   rule codes only, never what the data holds) are written in one transaction
   (``render/batches.py``: a batch's documents are issued all together or not at all;
   an ``Idempotency-Key`` makes a retry return the same documents). The template's
   :class:`~forms_service.db.TemplateVersion` row is written when new.

Download names carry no personal data: ``<form id>_<date>_<document id>.<ext>``
(a name would end up in proxy logs, mail subjects and browser histories).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import zipfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from forms_service import characters
from forms_service.errors import BadRequest, NotAForm, PayloadTooLarge, Problem, ValidationFailed
from forms_service.logging_setup import get_logger
from forms_service.audit import ANONYMOUS
from forms_service.render import batches

log = get_logger(__name__)

EXTENSION_KEY = "forms_service.render"
#: Where the app's LibreOffice pool is (``forms_service.services`` puts it there).
POOL_KEY = "pdf_pool"

FORMATS = ("docx", "pdf")
MIMETYPES = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}
#: Largest batch (API and CLI): 200 PDFs are ~15 s of work on two cores.
MAX_BATCH = 200
#: The findings header is cut beyond this many bytes (proxies refuse headers over ~8 KiB).
FINDINGS_HEADER_LIMIT = 6000


@dataclass
class RenderedDocument:
    """A rendered, stored and recorded document."""

    document_id: str
    form_id: str
    template_version: str
    filename: str
    mimetype: str
    content: bytes
    findings: list[Problem] = field(default_factory=list)
    layout: dict | None = None
    format: str = "docx"
    file_path: str = ""
    #: What the document's database row holds besides the above (data, layout).
    row_values: dict = field(default_factory=dict, repr=False)

    def findings_json(self) -> list[dict]:
        return [p.as_dict() for p in self.findings]


@dataclass
class _Prepared:
    """A request checked and ready to render (no side effect yet)."""

    fd: Any
    data: dict          # the model's JSON dump (what is stored)
    dump: dict          # the model's Python dump (what the template reads)
    derived: dict
    findings: list[Problem]


def download_name(form_id: str, document_id: str, fmt: str, day: dt.date | None = None) -> str:
    """``fiche-liaison_2026-11-23_01JD....pdf``: form, date, document id — no personal data."""
    day = day or dt.date.today()
    return f"{form_id}_{day.isoformat()}_{document_id}.{fmt}"


def findings_header(findings: Iterable[Problem], limit: int = FINDINGS_HEADER_LIMIT) -> str:
    """The ``X-Forms-Findings`` value: JSON, ASCII only (``\\u00e9``), at most ``limit`` bytes.

    Findings that do not fit are left out (``X-Forms-Findings-Count`` has the total,
    and the stored record and the batch's ``findings.json`` have them all).
    """
    items = [p.as_dict() for p in findings]
    while True:
        text = json.dumps(items, ensure_ascii=True, separators=(",", ":"))
        if len(text) <= limit or not items:
            return text
        items.pop()


def has_lists(fd) -> bool:
    return any(f.type == "list" for f in fd.fields)


class RenderService:
    """Renders, stores and records documents for one app (thread-safe).

    ``app`` gives the settings, the database and the audit trail (each call runs in
    the app's context); ``pool`` is the app's LibreOffice :class:`ConverterPool`,
    started at its first conversion. ``create_app`` makes one per app
    (``forms_service.services``); the app's ``close()`` stops the pool.
    """

    def __init__(self, app, pool):
        self.app = app
        self.settings = app.extensions["forms_service.settings"]
        self.pool = pool
        self._tv_lock = threading.Lock()
        self._recorded: set[tuple[str, str]] = set()          # TemplateVersion rows written
        self._blank_layouts: dict[tuple[str, str], dict] = {}  # their blank layouts
        self._layout_failed: set[tuple[str, str]] = set()     # not retried in this process
        #: PDFs made by the fast path ("fast") and fallbacks by reason code (benchmarks, tests).
        self.fast_stats: dict[str, int] = {}
        self._stats_lock = threading.Lock()

    # ------------------------------------------------------------------ public
    def render(self, form_id: str, data: Mapping | None = None, *, fmt: str = "docx",
               fillable: bool = False, strict: bool = False, actor: str | None = None,
               idempotency_key: str | None = None) -> RenderedDocument:
        """Check, render, store and record one document (see the module docstring).
        With ``idempotency_key``, a retry of the same request returns the same document."""
        with self._context():
            prepared = self.prepare(form_id, data, strict=strict, fmt=fmt, fillable=fillable)
            idem = batches.idempotency(idempotency_key, actor or ANONYMOUS, kind="render",
                                       form=prepared.fd.id, format=fmt, fillable=fillable,
                                       strict=strict, data=data)
            replayed = self._replay(idem)
            if replayed is not None:
                return replayed[0]
            doc = self._make(prepared, fmt=fmt, fillable=fillable)
            return self._issue([doc], actor=actor, idem=idem, fillable=fillable, strict=strict,
                               batch=False)[0]

    def render_batch(self, form_id: str, items: list, *, fmt: str = "docx",
                     fillable: bool = False, strict: bool = False, actor: str | None = None,
                     on_done: Callable[[RenderedDocument], None] | None = None,
                     workers: int | None = None,
                     idempotency_key: str | None = None) -> list[RenderedDocument]:
        """Render every item, in order, and issue them all or none (``render/batches.py``).
        Every item is checked first: one bad item refuses the whole batch
        (``ValidationFailed`` naming ``items.<i>.<path>``) before anything is rendered;
        every document is rendered before any is stored or recorded. With
        ``idempotency_key``, a retry of the same batch returns the same documents."""
        with self._context():
            prepared = self.check_batch(form_id, items, fmt=fmt, fillable=fillable, strict=strict)
            idem = batches.idempotency(idempotency_key, actor or ANONYMOUS, kind="batch",
                                       form=prepared[0].fd.id, format=fmt, fillable=fillable,
                                       strict=strict, data=items)
            replayed = self._replay(idem)
            if replayed is not None:
                return replayed

        def one(p: _Prepared) -> RenderedDocument:
            with self._context():
                doc = self._make(p, fmt=fmt, fillable=fillable)
            if on_done is not None:
                on_done(doc)
            return doc

        if workers is None:
            # PDF: keep every LibreOffice instance busy while the next DOCX renders.
            workers = 1 if fmt == "docx" else max(2, 2 * self.pool.size)
        if workers <= 1:
            docs = [one(p) for p in prepared]
        else:
            ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="render-batch")
            futures = [ex.submit(one, p) for p in prepared]
            try:
                docs = [f.result() for f in futures]
            finally:
                # On the first failure (LibreOffice gone...), the items not started yet are dropped.
                ex.shutdown(wait=True, cancel_futures=True)
        with self._context():
            return self._issue(docs, actor=actor, idem=idem, fillable=fillable, strict=strict,
                               batch=True)

    def check_batch(self, form_id: str, items: list, *, fmt: str = "docx", fillable: bool = False,
                    strict: bool = False) -> list["_Prepared"]:
        """Every item of a batch checked (no side effect): the prepared items, or the
        batch's errors (``BadRequest``, ``PayloadTooLarge``, ``ValidationFailed`` naming
        ``items.<i>.<path>``). What :meth:`render_batch` does first, and what a long batch
        queued as a job is checked with before it is accepted (``render/jobs.py``)."""
        if not isinstance(items, list):
            raise BadRequest("Un lot est une liste d'objets JSON", rule="liste_attendue")
        if not items:
            raise BadRequest("Le lot est vide", rule="lot_vide")
        if len(items) > MAX_BATCH:
            raise PayloadTooLarge(f"Lot trop grand : {MAX_BATCH} documents au plus "
                                  f"({len(items)} reçus)", path="items")
        with self._context():
            prepared: list[_Prepared] = []
            problems: list[Problem] = []
            for i, item in enumerate(items):
                if not isinstance(item, Mapping):
                    problems.append(Problem(f"items.{i}", "objet_attendu",
                                            f"L'élément {i} du lot doit être un objet JSON "
                                            f"({_json_kind(item)} reçu)"))
                    continue
                try:
                    prepared.append(self.prepare(form_id, item, strict=strict, fmt=fmt,
                                                 fillable=fillable))
                except ValidationFailed as exc:
                    problems += [Problem(_join("items", i, p.path), p.rule, p.message, p.severity)
                                 for p in exc.problems]
            if problems:
                raise ValidationFailed(problems)
            return prepared

    def blank_layout(self, form_id: str) -> dict:
        """The layout map of the form's blank print (where each box and zone is), for the
        current template version; computed once per version, then read from the database."""
        from forms_service.render.pipeline import template_version

        fd = self._catalogue().get(form_id)
        if fd.kind != "form":
            raise NotAForm(fd.id, "décrire par une carte de mise en page")
        with self._context():
            version = template_version(fd, self.settings)
            return self._blank_layout_of(fd, version, compute=True, required=True)

    def template_version(self, form_id: str) -> str:
        from forms_service.render.pipeline import template_version

        return template_version(self._catalogue().get(form_id), self.settings)

    # ------------------------------------------------------------------ steps
    def prepare(self, form_id: str, data: Mapping | None, *, strict: bool = False,
                fmt: str = "docx", fillable: bool = False) -> _Prepared:
        """Steps 1-3: the form, the checked data and the rule findings. No side effect."""
        from forms_service.rules.programme import Programme
        from forms_service.validation import validate

        if fmt not in FORMATS:
            raise BadRequest(f"Format inconnu « {fmt} » : docx ou pdf", path="format",
                             rule="format_inconnu")
        if fillable and fmt != "pdf":
            raise BadRequest("Seul un PDF peut être remplissable (format=pdf)", path="fillable",
                             rule="format_incompatible")
        fd = self._catalogue().get(form_id)
        if data is not None and not isinstance(data, Mapping):
            raise BadRequest("Les données doivent être un objet JSON", rule="objet_attendu")
        data = dict(data or {})
        if fd.kind != "form":
            if data:
                raise NotAForm(fd.id, "remplir avec des données")
            if fillable:
                raise NotAForm(fd.id, "rendre remplissable")
            return _Prepared(fd, {}, {}, {}, [])
        report = validate(fd, data, programme=Programme.from_settings(self.settings))
        if not report.model_valid:
            raise ValidationFailed(report.problems)
        if strict and report.errors:
            raise ValidationFailed(report.errors, "Données incomplètes ou incohérentes "
                                                  "(mode strict)")
        instance = report.instance
        stored = instance.model_dump(mode="json")
        # Defence in depth: whatever the model let through, no document holds a character
        # XML cannot carry (``forms_service.characters``).
        forbidden = [Problem(path, characters.RULE, characters.message(char))
                     for path, char in characters.forbidden_paths(stored)]
        if forbidden:
            raise ValidationFailed(forbidden)
        return _Prepared(fd, stored, instance.model_dump(mode="python"),
                         dict(report.derived), list(report.problems))

    def _make(self, p: _Prepared, *, fmt: str, fillable: bool) -> RenderedDocument:
        """Step 4: render one document in memory (a new id; nothing stored or recorded)."""
        from forms_service import db
        from forms_service.render.pipeline import render_docx, template_version

        fd = p.fd
        version = template_version(fd, self.settings)
        document_id = db.new_document_id()

        def docx(for_pdf: bool) -> bytes:
            return render_docx(fd, p.dump, settings=self.settings, document_id=document_id,
                               version=version, derived=p.derived, for_pdf=for_pdf)

        lists = has_lists(fd)
        layout: dict | None = None
        if fmt == "docx":
            content = docx(False)
            self._blank_layout_of(fd, version, compute=False)
        else:
            from forms_service.render.stamp import stamp_pdf

            layout = self._blank_layout_of(fd, version, compute=True,
                                           required=fillable and not lists)
            if lists:
                layout = self._layout_for(fd, p.dump, required=fillable)
            content = self._fast_pdf(p, version, layout, document_id) if fd.kind == "form" else None
            if content is None:    # LibreOffice's print, then the stamp
                content = stamp_pdf(self.pool.convert(docx(True)), fd.id, version, document_id)
            if fillable:
                from forms_service.render.fillable import make_fillable

                content = make_fillable(content, layout, form=fd.id, version=version,
                                        document_id=document_id, data_dump=p.dump)
        # A form with lists: the layout of this very print (rows move boxes); otherwise the
        # template version's blank layout, by reference.
        stored_layout = layout if (lists and layout is not None) else {
            "blank_layout": {"form_id": fd.id, "template_version": version}}
        return RenderedDocument(document_id, fd.id, version, download_name(fd.id, document_id, fmt),
                                MIMETYPES[fmt], content, p.findings, layout, fmt,
                                row_values={"data": p.data, "layout": stored_layout})

    def _fast_pdf(self, p: _Prepared, version: str, layout: dict | None,
                  document_id: str) -> bytes | None:
        """The stamped PDF without LibreOffice when the data cannot change the print's
        layout (``render/fastpath.py``; ``PDF_FAST_PATH``), else None: LibreOffice converts."""
        if not self.settings.pdf_fast_path:
            return None
        from forms_service.render import fastpath

        pdf, reason = fastpath.fast_pdf(p.fd, p.dump, derived=p.derived, settings=self.settings,
                                        version=version, pool=self.pool, layout=layout,
                                        document_id=document_id)
        with self._stats_lock:
            self.fast_stats[reason or "fast"] = self.fast_stats.get(reason or "fast", 0) + 1
        if pdf is None:
            log.debug("pdf_fast_path_fallback", form_id=p.fd.id, reason=reason)
        return pdf

    def _issue(self, docs: list[RenderedDocument], *, actor: str | None, idem, fillable: bool,
               strict: bool, batch: bool) -> list[RenderedDocument]:
        """Step 5: store, record and audit ``docs`` in one transaction (all or none)."""
        from forms_service import db

        def row(doc: RenderedDocument, path: str):
            return db.IssuedDocument(
                document_id=doc.document_id, form_id=doc.form_id,
                template_version=doc.template_version, data=doc.row_values["data"],
                file_path=path, layout=doc.row_values["layout"], format=doc.format,
                created_by=actor or ANONYMOUS)

        def event(doc: RenderedDocument) -> dict:
            return {"format": doc.format, "template_version": doc.template_version,
                    "fillable": fillable, "strict": strict, "batch": batch,
                    "findings": len(doc.findings), "rules": sorted({f.rule for f in doc.findings})}

        stored = batches.issue(docs, storage_dir=self.settings.storage_dir,
                               actor=actor or ANONYMOUS, idem=idem, event=event, row=row)
        return docs if stored is None else self._documents_of(stored)

    def _replay(self, idem) -> list[RenderedDocument] | None:
        """The documents an idempotency key already issued (``None`` for a new key)."""
        if idem is None:
            return None
        from forms_service import db

        with db.session() as s:
            stored = batches.replay(s, idem)
        if stored is None:
            return None
        log.info("idempotency_replay", documents=len(stored["documents"]))
        return self._documents_of(stored)

    @staticmethod
    def _documents_of(stored: dict) -> list[RenderedDocument]:
        def make(row, content: bytes, filename: str, findings: list[Problem]) -> RenderedDocument:
            return RenderedDocument(row.document_id, row.form_id, row.template_version, filename,
                                    MIMETYPES[row.format], content, findings, None, row.format,
                                    row.file_path)

        return batches.load_documents(stored, make)

    # ------------------------------------------------------------------ layouts
    def _layout_for(self, fd, dump: dict, *, required: bool) -> dict | None:
        """The layout of one print of a form with lists (rows move the boxes)."""
        from forms_service import db
        from forms_service.render.layout import layout_for

        try:
            with db.session() as s:
                return layout_for(fd, settings=self.settings, pool=self.pool, data_dump=dump,
                                  session=s)
        except Exception as exc:
            if required:
                raise
            log.error("layout_failed", form_id=fd.id, exc_type=type(exc).__name__)
            return None

    def _blank_layout_of(self, fd, version: str, *, compute: bool,
                         required: bool = False) -> dict | None:
        """Record the TemplateVersion row the first time a version is printed, and return
        its blank layout: stored, or computed now (``compute``: a PDF is being made, so
        LibreOffice is up).

        ``required`` (a fillable PDF needs it): a failure raises; otherwise it is logged
        and the document is issued without it (the row keeps an empty layout, computed
        at a later print).
        """
        key = (fd.id, version)
        layout = self._blank_layouts.get(key)
        if layout is not None or (key in self._recorded and not compute):
            return layout
        from sqlalchemy.exc import IntegrityError

        from forms_service import db
        from forms_service.render.pipeline import file_digest, template_path

        with self._tv_lock:
            layout = self._blank_layouts.get(key)
            if layout is not None:
                return layout
            with db.session() as s:
                row = s.get(db.TemplateVersion, key)
                stored = dict(row.layout) if row is not None and row.layout else None
            if stored:
                self._recorded.add(key)
                self._blank_layouts[key] = stored
                return stored
            if compute and fd.kind == "form" and (required or key not in self._layout_failed):
                from forms_service.render.layout import blank_layout

                try:
                    with db.session() as s:
                        layout = blank_layout(fd, self.settings, self.pool, session=s)
                except Exception as exc:
                    if required:
                        raise
                    self._layout_failed.add(key)
                    log.error("blank_layout_failed", form_id=fd.id, version=version,
                              exc_type=type(exc).__name__)
            if row is not None and not layout:
                self._recorded.add(key)
                return None
            try:
                with db.session() as s:
                    row = s.get(db.TemplateVersion, key)
                    if row is None:
                        s.add(db.TemplateVersion(
                            form_id=fd.id, version=version, layout=layout or {},
                            template_sha=file_digest(template_path(fd, self.settings))))
                        log.info("template_version_recorded", form_id=fd.id, version=version,
                                 with_layout=bool(layout))
                    elif layout and not row.layout:  # a stored layout is never replaced
                        row.layout = layout
            except IntegrityError:  # another process recorded it meanwhile
                log.info("template_version_recorded_elsewhere", form_id=fd.id, version=version)
            self._recorded.add(key)
            if layout:
                self._blank_layouts[key] = layout
            return layout

    # ------------------------------------------------------------------ helpers
    def _context(self):
        """The app's context, unless already inside it (batch workers are new threads)."""
        from flask import current_app, has_app_context

        if has_app_context() and current_app._get_current_object() is self.app:
            return nullcontext()
        return self.app.app_context()

    def _catalogue(self):
        """The catalogue of this app's settings (its EDE grid's items are the Annexe 3's fields)."""
        from forms_service.catalogue import catalogue_for

        return catalogue_for(self.settings.ede_grid)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "booléen", int: "nombre", float: "nombre", str: "texte",
            list: "liste"}.get(type(value), "valeur")


def _join(*parts: Any) -> str:
    return ".".join(str(p) for p in parts if p not in ("", None))


# ---------------------------------------------------------------------- batches as files

def batch_entries(docs: list[RenderedDocument]) -> list[tuple[str, RenderedDocument]]:
    """File names of a batch, in order: ``001_<download name>`` (sorts like the input)."""
    width = max(3, len(str(len(docs))))
    return [(f"{i + 1:0{width}d}_{doc.filename}", doc) for i, doc in enumerate(docs)]


def batch_findings(docs: list[RenderedDocument]) -> list[dict]:
    """The ``findings.json`` sidecar: one entry per file, in input order."""
    return [{"index": i, "file": name, "document_id": doc.document_id,
             "template_version": doc.template_version, "findings": doc.findings_json()}
            for i, (name, doc) in enumerate(batch_entries(docs))]


def batch_zip(docs: list[RenderedDocument]) -> bytes:
    """A ZIP with one file per document and ``findings.json``."""
    buf = io.BytesIO()

    def entry(name: str, compress: int) -> zipfile.ZipInfo:
        # A fixed date: the same documents give the same archive (an idempotent retry).
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = compress
        return info

    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, doc in batch_entries(docs):
            # PDFs and DOCX are compressed already.
            z.writestr(entry(name, zipfile.ZIP_STORED), doc.content)
        z.writestr(entry("findings.json", zipfile.ZIP_DEFLATED),
                   json.dumps(batch_findings(docs), ensure_ascii=False, indent=2))
    return buf.getvalue()


# ---------------------------------------------------------------------- app wiring

def recover_storage(app) -> None:
    """Finish or undo the issuing an interrupted process left (``batches.recover_storage``);
    run once when the app is made."""
    settings = app.extensions["forms_service.settings"]
    try:
        with app.app_context():
            batches.recover_storage(settings.storage_dir)
    except Exception as exc:  # e.g. a database not migrated yet: the next start retries
        log.error("storage_recovery_failed", exc_type=type(exc).__name__)


def libreoffice_check(pool, autostart: bool) -> Callable[[], dict]:
    """The ``libreoffice`` readiness check: the pool's :meth:`~ConverterPool.status`
    (instance counts, last good conversion; at most one test print a minute; no pids,
    ports or paths). It never starts a pool that starts lazily (tests, CLI)."""
    return pool.status


def get_service(app=None) -> RenderService:
    """The app's RenderService (``current_app``'s by default), made by ``create_app``."""
    if app is None:
        from flask import current_app

        app = current_app._get_current_object()
    return app.extensions[EXTENSION_KEY]
