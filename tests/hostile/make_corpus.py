"""Write the hostile corpus: malformed and hostile files the readers must refuse cleanly.

    .venv/bin/python tests/hostile/make_corpus.py        # (re)writes the files beside this script

Every file is small (the whole corpus stays well under 2 MB) and deterministic (same
bytes on every run). ``tests/test_parse_hostile.py`` reads them and says, for each one,
which error rule the readers must give; ``EXPECTED`` below is that table.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: file → rule code of the error entry the parsers must give (documented in docs/reading.md).
EXPECTED = {
    "vide.pdf": "fichier_vide",
    "pas-un-pdf.pdf": "format_non_pris_en_charge",
    "tronque.pdf": "pdf_corrompu",
    "chiffre.pdf": "pdf_chiffre",
    "boucle-pages.pdf": "pdf_corrompu",
    "boucle-xref.pdf": "pdf_corrompu",
    "500-pages.pdf": "trop_de_pages",
    "page-geante.pdf": "page_invalide",
    "bombe.png": "image_trop_grande",
    "large-100000px.png": "image_trop_grande",
    "bombe.jpg": "image_trop_grande",
    "tronque.jpg": "image_illisible",
    "1000-pages.tif": "trop_de_pages",
    "champs-malformes.pdf": "pdf_corrompu",
    "pdf-zip.pdf": "formulaire_non_reconnu",
    "html-pdf.html": "formulaire_non_reconnu",
}


def _pdf(objects: list[bytes], root: int = 1, *, extra_trailer: bytes = b"", prev_self: bool = False) -> bytes:
    """A PDF from numbered object bodies (1-based), with a correct xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    prev = b" /Prev %d" % xref if prev_self else b""
    out.write(b"trailer\n<< /Size %d /Root %d 0 R%s%s >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, root, prev, extra_trailer, xref))
    return out.getvalue()


def _page_content() -> bytes:
    text = b"BT /F1 24 Tf 72 720 Td (Fiche de liaison) Tj ET"
    return b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream"


def simple_pdf() -> bytes:
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        _page_content(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ])


def bad_fields_pdf() -> bytes:
    """An AcroForm whose /Fields holds a number, not a field dictionary."""
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [ 5 ] >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ])


def zip_polyglot() -> bytes:
    """A PDF that is also a ZIP archive (a ZIP appended after %%EOF: both readers open it)."""
    buf = io.BytesIO()
    import zipfile
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("lisez-moi.txt", (2020, 1, 1, 0, 0, 0)), "contenu")
    return simple_pdf() + buf.getvalue()


def html_polyglot() -> bytes:
    """An HTML page with a PDF inside its first kilobyte (a browser and a PDF reader both open it)."""
    return (b"<!DOCTYPE html><html><body><script>alert(1)</script><!--\n" + simple_pdf()
            + b"\n--></body></html>\n")


def loop_pages_pdf() -> bytes:
    """The page tree contains itself (Kids → itself), and a stream's /Length refers to itself."""
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 /Parent 2 0 R >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
        b"<< /Length 5 0 R >>\nstream\nq Q\nendstream",
        b"5 0 R",
    ])


def loop_xref_pdf() -> bytes:
    """The trailer's /Prev points at its own xref table, and the root at a page that is its own parent."""
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [2 0 R] /Count 1000000 /Parent 2 0 R >>",
    ], prev_self=True)


def many_pages_pdf(n: int) -> bytes:
    kids = b" ".join(b"%d 0 R" % (4 + i) for i in range(n))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % n,
               b"<< /Length 3 >>\nstream\nq Q\nendstream"]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 3 0 R >>"] * n
    return _pdf(objects)


def giant_page_pdf() -> bytes:
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 14400 14400] /Contents 4 0 R >>",
        b"<< /Length 3 >>\nstream\nq Q\nendstream",
    ])


def encrypted_pdf() -> bytes:
    import pikepdf

    src = pikepdf.open(io.BytesIO(simple_pdf()))
    out = io.BytesIO()
    src.save(out, encryption=pikepdf.Encryption(user="secret", owner="owner", R=4, aes=False, metadata=False), static_id=True,
             deterministic_id=False)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int, rows: bytes | None, bit_depth: int = 8, colour: int = 0) -> bytes:
    """A PNG whose header says ``width`` × ``height``; ``rows`` the raw scanlines (or None:
    a few bytes of zeros, the header alone is the threat)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    raw = rows if rows is not None else b"\x00" * 64
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) +
            _png_chunk(b"IDAT", zlib.compress(raw, 9)) + _png_chunk(b"IEND", b""))


def wide_png() -> bytes:
    """100 000 pixels wide, 4 high, 1 bit: a few hundred bytes."""
    w, h = 100_000, 4
    row = b"\x00" + b"\xff" * ((w + 7) // 8)
    return png(w, h, row * h, bit_depth=1)


def jpeg_bytes(width: int = 320, height: int = 200) -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("L", (width, height), 255)
    ImageDraw.Draw(im).rectangle([20, 20, width - 20, height - 20], outline=0, width=3)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def jpeg_bomb() -> bytes:
    """A small JPEG whose frame header (SOF0) says 65 000 × 65 000 pixels."""
    data = bytearray(jpeg_bytes(64, 64))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 65000, 65000)
    return bytes(data)


def tiff_pages(n: int) -> bytes:
    from PIL import Image

    frames = [Image.new("1", (8, 8), 1) for _ in range(n)]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:], compression="group4")
    return buf.getvalue()


def corpus() -> dict[str, bytes]:
    pdf = simple_pdf()
    jpeg = jpeg_bytes()
    return {
        "vide.pdf": b"",
        "pas-un-pdf.pdf": "Ceci n'est pas un PDF : bonjour, voici ma fiche.\n".encode("utf-8"),
        "tronque.pdf": pdf[: len(pdf) // 3],
        "chiffre.pdf": encrypted_pdf(),
        "boucle-pages.pdf": loop_pages_pdf(),
        "boucle-xref.pdf": loop_xref_pdf(),
        "500-pages.pdf": many_pages_pdf(500),
        "page-geante.pdf": giant_page_pdf(),
        "bombe.png": png(100_000, 100_000, None),
        "large-100000px.png": wide_png(),
        "bombe.jpg": jpeg_bomb(),
        "tronque.jpg": jpeg[: len(jpeg) // 2],
        "1000-pages.tif": tiff_pages(1000),
        "champs-malformes.pdf": bad_fields_pdf(),
        "pdf-zip.pdf": zip_polyglot(),
        "html-pdf.html": html_polyglot(),
    }


def main() -> int:
    files = corpus()
    assert set(files) == set(EXPECTED)
    for name, data in files.items():
        (HERE / name).write_bytes(data)
    total = sum(len(d) for d in files.values())
    print(f"{len(files)} files, {total / 1024:.0f} KiB in {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
