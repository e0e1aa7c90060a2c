"""The dependency audit (``security/audit_dependencies.py``, run by ``scripts/test``):
every dependency pinned, the ignore file well formed."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("audit_dependencies",
                                              ROOT / "security" / "audit_dependencies.py")
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)


def test_every_dependency_is_pinned():
    assert audit.pins() and all("==" in p for p in audit.pins())


def test_the_ignore_file_is_well_formed():
    for entry in audit.ignored():  # exits on a malformed entry
        assert isinstance(entry["date"], dt.date)


def test_an_entry_without_reason_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "ignore.toml"
    bad.write_text('[[ignore]]\nid = "PYSEC-1"\npackage = "x"\nreviewed_by = "a"\n'
                   "date = 2026-12-01\n")
    monkeypatch.setattr(audit, "IGNORE_FILE", bad)
    with pytest.raises(SystemExit) as exc:
        audit.ignored()
    assert exc.value.code == 2


def test_an_expired_entry_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "ignore.toml"
    bad.write_text('[[ignore]]\nid = "PYSEC-1"\npackage = "x"\nreason = "r"\n'
                   'reviewed_by = "a"\ndate = 2026-01-01\nuntil = 2026-02-01\n')
    monkeypatch.setattr(audit, "IGNORE_FILE", bad)
    with pytest.raises(SystemExit):
        audit.ignored()
