"""Cold conversion: one new ``soffice --headless --convert-to pdf`` per document.

~0.8 s per document (the pool's instances: ~0.12 s): the benchmark baseline, and the
pool's fallback when the server side (``uno``) is missing.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from pathlib import Path

from forms_service.errors import ComponentMissing

from .conversion import ConversionFailed, ConversionTimeout, check_docx, check_pdf
from .processes import kill_group, members
from .soffice import MSG_MISSING, clean_env, find_soffice

log = logging.getLogger(__name__)


def cold_convert(docx: bytes, timeout: float | None = 120.0, *,
                 soffice: str | os.PathLike | None = None) -> bytes:
    """Convert with a new ``soffice`` in a fresh temporary profile; return the PDF.

    The process group is killed on timeout, and whatever is left of it afterwards.
    """
    check_docx(docx)
    exe = find_soffice(soffice)
    if exe is None:
        raise ComponentMissing(MSG_MISSING)
    with tempfile.TemporaryDirectory(prefix="forms-soffice-") as tmp:
        tmp_path = Path(tmp)
        src = tmp_path / "document.docx"
        src.write_bytes(bytes(docx))
        out_dir = tmp_path / "out"
        cmd = [exe, "--headless", "--invisible", "--nologo", "--nodefault", "--norestore",
               "--nolockcheck", "--nofirststartwizard",
               f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}",
               "--convert-to", "pdf:writer_pdf_Export", "--outdir", str(out_dir), str(src)]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=tmp, env=clean_env())
        except OSError as exc:
            raise ComponentMissing(MSG_MISSING) from exc
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid, proc=proc)
            proc.communicate()
            raise ConversionTimeout(
                f"La conversion en PDF a dépassé le délai de {timeout:g} s.") from None
        finally:
            if members(proc.pid):
                kill_group(proc.pid, proc=proc)
        pdf_path = out_dir / "document.pdf"
        if not pdf_path.exists():
            log.error("soffice exited %s without a PDF: %s", proc.returncode,
                      output.decode(errors="replace")[-2000:])
            raise ConversionFailed("LibreOffice n'a pas produit de PDF pour ce document.")
        return check_pdf(pdf_path.read_bytes())
