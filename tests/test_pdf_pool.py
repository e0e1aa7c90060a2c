"""The LibreOffice converter pool, against a real LibreOffice (no mocks).

One pool for the whole module (an instance takes ~6-10 s to start). Tests that need
LibreOffice are skipped, with the reason, only when ``soffice`` is not installed; CI
installs it, so there they run. The ``uno`` side is required: the pool is built with
``cold_fallback=False``, so a missing python3-uno fails loudly instead of hiding.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docx
import psutil
import pypdfium2 as pdfium
import pytest
from docx.shared import Mm

from forms_service.errors import BadDocument, ComponentMissing
from forms_service.render.pdf import (
    MSG_MISSING, ConversionTimeout, ConverterPool, cold_convert, get_pool,
    libreoffice_available, pdf_page_count, pool_options,
)
from forms_service.render.processes import group_members, name_of

needs_libreoffice = pytest.mark.skipif(
    not libreoffice_available(),
    reason="LibreOffice is not installed (no soffice): PDF conversion tests skipped")

_PDFIUM_LOCK = threading.Lock()  # pypdfium2 is not thread-safe


def make_docx(text: str, pages: int = 1) -> bytes:
    document = docx.Document()
    section = document.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    for page in range(pages):
        document.add_paragraph(f"{text} — page {page + 1}")
        table = document.add_table(rows=12, cols=3)
        for r, row in enumerate(table.rows):
            for c, cell in enumerate(row.cells):
                cell.text = f"ligne {r} colonne {c} ☐ ☒ éèàç"
        if page < pages - 1:
            document.add_page_break()
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def pdf_text(pdf: bytes) -> str:
    with _PDFIUM_LOCK:
        doc = pdfium.PdfDocument(pdf)
        try:
            return "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
        finally:
            doc.close()


def processes_mentioning(path: Path) -> list[int]:
    """Live processes whose command line names ``path`` (orphan check)."""
    marks = (str(path), path.as_uri())
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["pid"] == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmd = " ".join(proc.info["cmdline"] or ())
        if any(m in cmd for m in marks):
            found.append(proc.info["pid"])
    return found


def still_running(pids) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def soffice_bin_pids(info: dict) -> list[int]:
    return [pid for pid in info["libreoffice_pids"] if name_of(pid) == "soffice.bin"]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    if not libreoffice_available():
        pytest.skip("LibreOffice is not installed (no soffice): PDF conversion tests skipped")
    work = tmp_path_factory.mktemp("lo")
    p = ConverterPool(size=2, work_dir=work, recycle_after=20, cold_fallback=False)
    p.start()
    yield p
    p.close()
    assert processes_mentioning(work) == [], "LibreOffice processes left after close()"


@pytest.fixture
def ready_pool(pool):
    assert pool.wait_ready(timeout=120), pool.instances()
    return pool


# ------------------------------------------------------------------ without LibreOffice

def test_component_missing_when_soffice_path_is_wrong(tmp_path):
    missing = tmp_path / "nowhere" / "soffice"
    assert libreoffice_available(missing) is False
    pool = ConverterPool(size=1, work_dir=tmp_path / "lo", soffice=missing)
    with pytest.raises(ComponentMissing) as info:
        pool.convert(make_docx("Bonjour"))
    assert info.value.message == MSG_MISSING
    assert info.value.http_status == 503 and info.value.exit_code == 3
    status = pool.status()
    assert status["ok"] is False and status["error"] == MSG_MISSING
    with pytest.raises(ComponentMissing):
        cold_convert(make_docx("Bonjour"), soffice=missing)
    pool.close()


def test_not_a_docx_is_refused_before_libreoffice(tmp_path):
    pool = ConverterPool(size=1, work_dir=tmp_path / "lo")
    with pytest.raises(BadDocument):
        pool.convert(b"%PDF-1.4 not a docx")
    assert pool.mode == "stopped"  # nothing was started


def test_get_pool_shares_a_lazy_pool_per_options(tmp_path):
    config = {"PDF_POOL_SIZE": 2, "VAR_DIR": str(tmp_path)}
    assert pool_options(config)["work_dir"] == tmp_path / "lo"
    pool = get_pool(config)
    assert pool.size == 2 and pool.work_dir == tmp_path / "lo"
    assert pool.mode == "stopped" and pool.instances() == []  # LibreOffice not started
    assert not (tmp_path / "lo").exists()
    assert get_pool(dict(config)) is pool  # one pool per process for the same settings
    assert get_pool({**config, "PDF_POOL_SIZE": 1}) is not pool
    pool.close()
    assert get_pool(config) is not pool  # a closed pool is replaced


def test_status_of_a_lazy_pool_starts_nothing(tmp_path):
    pool = ConverterPool(size=2, work_dir=tmp_path / "lo")
    status = pool.status()
    assert status["mode"] == "stopped" and status["ok"] is libreoffice_available()
    assert status["instances"] == {"configured": 2, "ready": 0, "busy": 0, "starting": 0,
                                   "broken": 0}
    assert pool.mode == "stopped" and not (tmp_path / "lo").exists()
    pool.close()
    assert pool.status()["ok"] is False


# ------------------------------------------------------------------ with LibreOffice

@needs_libreoffice
def test_conversion_gives_a_pdf_with_the_text(ready_pool):
    pdf = ready_pool.convert(make_docx("Contrat d'engagement réciproque n° 4217", pages=3))
    assert pdf.startswith(b"%PDF-")
    assert pdf_page_count(pdf) == 3
    text = pdf_text(pdf)
    assert "Contrat d'engagement réciproque n° 4217" in text
    assert "éèàç" in text


@needs_libreoffice
def test_parallel_conversions_from_threads(ready_pool):
    docs = {f"Dossier RSA {i:03d}": make_docx(f"Dossier RSA {i:03d}") for i in range(12)}
    with ThreadPoolExecutor(max_workers=6) as ex:
        results = dict(zip(docs, ex.map(ready_pool.convert, docs.values())))
    for marker, pdf in results.items():
        assert pdf.startswith(b"%PDF-")
        text = pdf_text(pdf)
        assert marker in text  # each caller got its own document back
        others = [m for m in docs if m != marker and m in text]
        assert others == []
    assert {i["index"] for i in ready_pool.instances() if i["total_conversions"]} == {0, 1}


@needs_libreoffice
def test_test_print_is_a_real_conversion(ready_pool):
    result = ready_pool.test_print()
    assert result["ok"] is True and result["pages"] == 1, result


def _without_identifiers(status: dict) -> None:
    text = repr(status)
    assert "pid" not in text and "port" not in text and "/" not in text, status


@needs_libreoffice
def test_status_probes_at_most_once_per_interval_and_shows_no_pids(tmp_path):
    with ConverterPool(size=1, work_dir=tmp_path / "lo", cold_fallback=False,
                       probe_interval=3600) as pool:
        status = pool.status()
        assert status["ok"] is True and status["mode"] == "pool", status
        assert status["instances"]["configured"] == 1 and status["instances"]["ready"] == 1
        assert status["last_success_age_s"] is not None  # the readiness test print
        _without_identifiers(status)
        conversions = pool.stats["conversions"]
        for _ in range(5):
            assert pool.status()["ok"] is True
        assert pool.stats["conversions"] == conversions  # no conversion per call
        pool.probe_interval = 0  # now due: one test print, counted as a conversion
        assert pool.status()["ok"] is True
        assert pool.stats["conversions"] == conversions + 1


@needs_libreoffice
def test_close_leaves_no_process_of_the_pool(tmp_path):
    pool = ConverterPool(size=2, work_dir=tmp_path / "lo", cold_fallback=False).start()
    assert pool.convert(make_docx("Avant l'arrêt")).startswith(b"%PDF-")
    pids = pool.process_ids()
    names = {name_of(pid) for pid in pids}
    assert "soffice.bin" in names and len(pids) >= 4, names  # 2 × (unoserver + LibreOffice)
    pool.close()
    assert still_running(pids) == []
    assert processes_mentioning(tmp_path / "lo") == []
    pool.close()  # idempotent


@needs_libreoffice
def test_instances_are_recycled(ready_pool):
    pool = ready_pool
    recycles = pool.stats["recycles"]
    small = make_docx("Recyclage")
    for _ in range(60):
        assert pool.convert(small).startswith(b"%PDF-")
        if pool.stats["recycles"] > recycles:
            break
    assert pool.stats["recycles"] > recycles
    assert pool.wait_ready(timeout=120)
    assert pool.test_print()["ok"] is True


@needs_libreoffice
def test_killed_libreoffice_is_restarted_and_conversions_succeed(ready_pool):
    pool = ready_pool
    victim = pool.instances()[0]
    [victim_bin] = soffice_bin_pids(victim)
    restarts, retries = pool.stats["restarts"], pool.stats["retries"]
    big = make_docx("Conversion interrompue", pages=12)
    with ThreadPoolExecutor(max_workers=4) as ex:
        futures = [ex.submit(pool.convert, big) for _ in range(6)]
        time.sleep(0.5)  # conversions under way on both instances
        os.kill(victim_bin, signal.SIGKILL)
        pdfs = [f.result(timeout=180) for f in futures]
    assert all(p.startswith(b"%PDF-") and pdf_page_count(p) == 12 for p in pdfs)
    assert pool.stats["restarts"] > restarts
    assert pool.stats["retries"] > retries  # killed mid-conversion, retried elsewhere
    assert pool.wait_ready(timeout=120)
    after = pool.instances()[0]
    assert after["starts"] > victim["starts"] and after["pid"] != victim["pid"]
    assert soffice_bin_pids(after) and victim_bin not in soffice_bin_pids(after)
    assert group_members(victim["pid"]) == []  # the old group is gone entirely
    assert "Conversion" in pdf_text(pool.convert(make_docx("Conversion après redémarrage")))


@needs_libreoffice
def test_timeout_raises_a_clear_error_and_the_pool_recovers(ready_pool):
    pool = ready_pool
    timeouts = pool.stats["timeouts"]
    with pytest.raises(ConversionTimeout) as info:
        pool.convert(make_docx("Trop long", pages=12), timeout=0.01)
    assert "délai" in info.value.message and info.value.http_status == 504
    assert pool.stats["timeouts"] == timeouts + 2  # tried twice, on two fresh instances
    pdf = pool.convert(make_docx("Après le délai dépassé"))
    assert "Après le délai dépassé" in pdf_text(pdf)


@needs_libreoffice
def test_cold_convert(tmp_path):
    pdf = cold_convert(make_docx("Conversion à froid"))
    assert "Conversion à froid" in pdf_text(pdf)


@needs_libreoffice
def test_missing_uno_side(tmp_path):
    strict = ConverterPool(size=1, work_dir=tmp_path / "a", uno_python=tmp_path / "no-python",
                           cold_fallback=False)
    with pytest.raises(ComponentMissing) as info:
        strict.start()
    assert "python3-uno" in info.value.message
    fallback = ConverterPool(size=1, work_dir=tmp_path / "b", uno_python=tmp_path / "no-python")
    pdf = fallback.convert(make_docx("Repli sur soffice"))
    assert fallback.mode == "cold" and "Repli sur soffice" in pdf_text(pdf)
    fallback.close()


@needs_libreoffice
def test_orphans_of_a_dead_owner_are_killed_and_close_leaves_nothing(tmp_path):
    work = tmp_path / "lo"
    crashed = ConverterPool(size=1, work_dir=work, cold_fallback=False).start()
    orphans = processes_mentioning(work)
    assert orphans
    # Simulate the owner's death: its slot lock goes, its processes stay.
    os.close(crashed._instances[0].lock_fd)
    crashed._pid = -1  # close()/atexit now leave them alone, as after a crash
    successor = ConverterPool(size=1, work_dir=work, cold_fallback=False).start()
    assert successor._instances[0].dir == work / "0"  # the same slot, reclaimed
    assert not set(orphans) & set(processes_mentioning(work))
    assert successor.test_print()["ok"] is True
    successor.close()
    assert processes_mentioning(work) == []


_SIGNAL_CHILD = """
import json, signal, sys, time
from forms_service.render.pool import ConverterPool

pool = ConverterPool(size=1, work_dir=sys.argv[1], cold_fallback=False).start()

def stop(signum, frame):
    pool.close()
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
print(json.dumps(pool.process_ids()), flush=True)
while True:
    time.sleep(0.1)
"""


@needs_libreoffice
def test_close_from_a_signal_handler_leaves_no_process(tmp_path):
    import json
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", _SIGNAL_CHILD, str(tmp_path / "lo")],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        pids = json.loads(child.stdout.readline())
        assert len(pids) >= 2 and still_running(pids), pids
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
    assert still_running(pids) == []
    assert processes_mentioning(tmp_path / "lo") == []
