"""``db.on_commit``: work done once the outermost transaction commits, never at a
savepoint's release, dropped with the transaction (or savepoint) it was added in. Real
SQLite; the desk runs each record hook in a savepoint, which is how the e-mails of a fiche
reviewed at the desk were handed over before their transaction had committed."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from forms_service.db.on_commit import on_commit


def _sessions(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 't.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    return sessionmaker(engine)


def test_it_runs_at_the_outer_commit_not_at_a_savepoint_release(tmp_path):
    sessions, done = _sessions(tmp_path), []
    with sessions.begin() as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
        with s.begin_nested():
            on_commit(s, lambda: done.append("in the savepoint"))
        assert done == []                        # released, not committed
        on_commit(s, lambda: done.append("outer"))
        assert done == []
    assert done == ["in the savepoint", "outer"]
    with sessions.begin() as s:                  # the work sees what was committed
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 1


def test_it_is_dropped_with_its_transaction_or_its_savepoint(tmp_path):
    sessions, done = _sessions(tmp_path), []
    with sessions.begin() as s:
        try:
            with s.begin_nested():
                on_commit(s, lambda: done.append("rolled back savepoint"))
                raise ValueError
        except ValueError:
            pass
        with s.begin_nested():
            on_commit(s, lambda: done.append("kept"))
    assert done == ["kept"]
    try:
        with sessions.begin() as s:
            on_commit(s, lambda: done.append("rolled back"))
            raise ValueError
    except ValueError:
        pass
    with sessions.begin() as s:                  # a later transaction of a new session
        pass
    assert done == ["kept"]


def test_a_failing_callback_does_not_stop_the_others(tmp_path, log_lines):
    sessions, done = _sessions(tmp_path), []

    def fails():
        raise OSError("down")

    with sessions.begin() as s:
        on_commit(s, fails)
        on_commit(s, lambda: done.append("next"))
    assert done == ["next"]
    assert [(e["event"], e["error"]) for e in log_lines() if e["event"] == "on_commit_failed"] == [
        ("on_commit_failed", "OSError")]
