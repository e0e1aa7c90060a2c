"""Loaded by the desk's worker processes of ``tests/test_desk_twin_race.py`` only (their
``PYTHONPATH`` starts with this folder): a record-stored hook that makes two workers'
writing transactions meet.

With ``DESK_TEST_MEET_DIR`` set, a worker storing a record (inside its writing
transaction, after it looked for earlier twin pages) leaves a mark in that folder and
waits — at most ``DESK_TEST_MEET_SECONDS`` — for another worker's mark. Two workers that
both get there at once would both keep twin pages; a worker held by the twin lock never
gets there while the other one writes (it finds the first one's pages, stores no record).
"""

import os

if os.environ.get("DESK_TEST_MEET_DIR"):
    import time
    from pathlib import Path

    def _meet(session, record) -> None:
        folder = Path(os.environ["DESK_TEST_MEET_DIR"])
        (folder / f"{os.getpid()}").write_text(str(record.id))
        deadline = time.monotonic() + float(os.environ.get("DESK_TEST_MEET_SECONDS", "15"))
        while time.monotonic() < deadline:
            if any(p.name != str(os.getpid()) for p in folder.iterdir()):
                return
            time.sleep(0.1)

    from forms_service.desk import records

    records.on_record_stored.append(_meet)
