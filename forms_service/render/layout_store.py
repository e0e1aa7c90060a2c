"""The blank form's layout map kept in the ``template_version`` table, per template version.

Rows are never deleted nor their maps overwritten: a printed document is read back
with the map of the version it names, even after the template changed.
"""

from __future__ import annotations

import copy

from ..catalogue import FormDefinition

def stored_layout(session, form_id: str, version: str) -> dict | None:
    """The map stored for a template version (any version ever stored), or None."""
    from ..db.models import TemplateVersion

    row = session.get(TemplateVersion, (form_id, version))
    return copy.deepcopy(row.layout) if row is not None and row.layout else None


def save_layout(session, fd: FormDefinition, version: str, layout: dict, template_sha: str) -> bool:
    """Record a template version and its blank map in ``template_version``.

    Never deletes a row and never replaces a stored map (a printed document must be
    read with the map it was printed with, even if LibreOffice is upgraded later); a
    row that exists without a map gets this one. Safe when two processes race (insert
    … on conflict do nothing). The caller's session commits. True when written.
    """
    from sqlalchemy import update

    from ..db.models import TemplateVersion, utcnow

    values = {"form_id": fd.id, "version": version, "layout": layout,
              "template_sha": template_sha, "created_at": utcnow()}
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        stmt = insert(TemplateVersion).values(**values).on_conflict_do_nothing(
            index_elements=["form_id", "version"])
        if session.execute(stmt).rowcount:
            return True
    else:
        if session.get(TemplateVersion, (fd.id, version)) is None:
            session.add(TemplateVersion(**values))
            session.flush()
            return True
    row = session.get(TemplateVersion, (fd.id, version), populate_existing=True)
    if row is not None and not row.layout:
        session.execute(update(TemplateVersion)
                        .where(TemplateVersion.form_id == fd.id, TemplateVersion.version == version)
                        .values(layout=layout))
        session.expire(row)
        return True
    return False
