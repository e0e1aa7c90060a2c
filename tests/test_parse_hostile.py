"""Malformed and hostile files: each one gets a clear French error entry with a stable
rule code, never a traceback, and never takes the other files (or the process) down.

The corpus is ``tests/hostile/`` (written by ``tests/hostile/make_corpus.py``, whose
``EXPECTED`` table gives each file's rule). Files are read in process, then through
the worker sandbox, with a worker that dies and a worker that overruns its time.
"""

from __future__ import annotations

import io
import os
import re
import sys
import time
from pathlib import Path

import pytest

from forms_service.config import Settings
from parsers.parse import parse_files as _parse_files
from parsers.sandbox import Sandbox
from parsers.store import Store

HOSTILE = Path(__file__).resolve().parent / "hostile"
sys.path.insert(0, str(HOSTILE))
from make_corpus import EXPECTED, corpus  # noqa: E402

#: Words of a traceback or of a library's English message: never in what a user reads.
NOT_FOR_USERS = re.compile(r"Traceback|Error\b|Exception|object at 0x|File \"|errno|PdfiumError|stream <",
                           re.IGNORECASE)


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    """A service of its own (SQLite under a temporary var dir): nothing was issued."""
    return Settings.from_env({"var_dir": tmp_path_factory.mktemp("hostile") / "var"})


@pytest.fixture(scope="module")
def parse_files(settings):
    """``parse_files`` in this process, with a store on ``settings`` and no converter pool."""
    store = Store(settings)
    yield lambda files, limits=None: _parse_files(files, limits, store=store)
    store.close()


def blank_page_png() -> bytes:
    """A blank A4 page at 100 dpi: readable, but no form on it."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (827, 1169), 250).save(buf, format="PNG", dpi=(100, 100))
    return buf.getvalue()


def hostile_files() -> list[tuple[str, bytes]]:
    return [(name, (HOSTILE / name).read_bytes()) for name in EXPECTED]


def assert_clear_error(entry: dict, name: str, rule: str) -> None:
    assert entry.get("file") == name, entry
    assert "error" in entry, f"{name}: no error entry but {entry}"
    assert entry["error"]["rule"] == rule, f"{name}: {entry['error']}"
    message = entry["error"]["message"]
    assert message and message[0].isupper() and not NOT_FOR_USERS.search(message), message


# ---------------------------------------------------------------------- the corpus itself

def test_corpus_is_small_and_up_to_date():
    files = corpus()
    assert set(files) == set(EXPECTED)
    assert sum(len(d) for d in files.values()) < 2 * 1024 * 1024
    for name, data in files.items():   # the committed files are what the script writes
        assert (HOSTILE / name).read_bytes() == data, f"{name}: run tests/hostile/make_corpus.py"


# ---------------------------------------------------------------------- in process

@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_hostile_file_gets_its_rule(name, parse_files):
    t0 = time.perf_counter()
    result = parse_files([(name, (HOSTILE / name).read_bytes())])
    assert time.perf_counter() - t0 < 10
    assert len(result) == 1
    assert_clear_error(result[0], name, EXPECTED[name])


def test_hostile_files_do_not_stop_a_batch(parse_files):
    files = hostile_files()
    files.insert(3, ("page-blanche.png", blank_page_png()))
    result = parse_files(files)
    by_file = {e["file"]: e for e in result}
    assert len(result) == len(files)
    for name, rule in EXPECTED.items():
        assert_clear_error(by_file[name], name, rule)
    assert by_file["page-blanche.png"]["page_status"] == "blank"
    assert [e["file"] for e in result] == [n for n, _ in files]   # file order kept


def test_wrong_extension_is_read_by_content(parse_files):
    """A PNG named .pdf is a PNG; a PDF named .jpg is a PDF."""
    png = blank_page_png()
    result = parse_files([("scan.pdf", png), ("tronque.jpg", (HOSTILE / "tronque.pdf").read_bytes())])
    assert result[0]["page_status"] == "blank"
    assert result[1]["error"]["rule"] == "pdf_corrompu"


# ---------------------------------------------------------------------- through the sandbox

@pytest.fixture(scope="module")
def sandbox(settings):
    box = Sandbox(settings, workers=2, timeout=60)
    yield box
    box.close()


def test_sandbox_reads_the_corpus(sandbox):
    files = hostile_files() + [("page-blanche.png", blank_page_png())]
    result = sandbox.parse(files)
    by_file = {e["file"]: e for e in result}
    assert len(result) == len(files)
    for name, rule in EXPECTED.items():
        assert_clear_error(by_file[name], name, rule)
    assert by_file["page-blanche.png"]["page_status"] == "blank"


def _dying_parse(files, limits):
    """A reader that takes its worker down on a file named ``meurt*`` and overruns on ``lent*``."""
    for name, _ in files:
        if name.startswith("meurt"):
            os._exit(3)
        if name.startswith("lent"):
            time.sleep(30)
    import parsers.sandbox as sandbox_mod
    return _parse_files(files, limits, store=sandbox_mod._STORE)


@pytest.fixture
def dying_reader(monkeypatch):
    import parsers.sandbox as sandbox_mod

    # pickled by name: the worker imports this test module and finds the same function
    monkeypatch.setattr(sandbox_mod, "_parse_many", _dying_parse)
    return sandbox_mod


def test_a_worker_that_dies_loses_only_its_file(dying_reader, settings):
    box = Sandbox(settings, workers=2, timeout=60)
    try:
        blank = blank_page_png()
        files = [("a.png", blank), ("meurt.pdf", b"%PDF-1.4"), ("vide.pdf", b""), ("b.png", blank),
                 ("meurt.png", blank)]
        result = box.parse(files)
        by_file = {e["file"]: e for e in result}
        assert [e["file"] for e in result] == [n for n, _ in files]
        assert by_file["meurt.pdf"]["error"]["rule"] == "document_hostile"
        assert by_file["meurt.png"]["error"]["rule"] == "document_hostile"
        assert by_file["vide.pdf"]["error"]["rule"] == "fichier_vide"
        assert by_file["a.png"]["page_status"] == by_file["b.png"]["page_status"] == "blank"
        # the sandbox works on after that
        assert box.parse([("c.png", blank)])[0]["page_status"] == "blank"
    finally:
        box.close()


def test_a_file_that_overruns_its_time_loses_only_itself(dying_reader, settings):
    # the limit leaves a loaded machine room to restart a worker (imports) for the other files
    box = Sandbox(settings, workers=2, timeout=10)
    try:
        box.parse([("chauffe.png", blank_page_png())])   # workers started (imports) before timing
        files = [("lent.pdf", b"%PDF-1.4"), ("vide.pdf", b""), ("a.png", blank_page_png())]
        t0 = time.perf_counter()
        result = box.parse(files)
        assert time.perf_counter() - t0 < 29     # the slow file sleeps 30 s: it was abandoned
        by_file = {e["file"]: e for e in result}
        assert by_file["lent.pdf"]["error"] == {"rule": "delai_depasse",
                                               "message": "Lecture trop longue : fichier abandonné"}
        assert by_file["vide.pdf"]["error"]["rule"] == "fichier_vide"
        assert by_file["a.png"]["page_status"] == "blank"
    finally:
        box.close()
