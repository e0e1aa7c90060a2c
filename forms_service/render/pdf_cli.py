"""``python -m forms_service.render.pdf_cli``: prepare the pool's server side, check, convert.

``--prepare`` is what ``scripts/setup`` runs (makes ``.venv-uno``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from forms_service.errors import FormsError

from .convert_cold import cold_convert
from .pool import ConverterPool
from .uno_env import DEFAULT_UNO_VENV, prepare_server_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m forms_service.render.pdf_cli",
        description="LibreOffice PDF conversion: prepare the server side, check, convert.")
    parser.add_argument("--prepare", action="store_true",
                        help=f"make {DEFAULT_UNO_VENV.name}/ (Debian's python3 + python3-uno "
                             "+ unoserver) for the pool's servers")
    parser.add_argument("--check", action="store_true",
                        help="start a pool, print its test print and status as JSON")
    parser.add_argument("--size", type=int, default=1, help="instances for --check/--convert")
    parser.add_argument("--work-dir", default="var/lo")
    parser.add_argument("--convert", nargs=2, metavar=("DOCX", "PDF"))
    parser.add_argument("--cold", action="store_true", help="convert with a new soffice process")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.prepare:
            print(prepare_server_env())
        if args.check or (args.convert and not args.cold):
            with ConverterPool(args.size, args.work_dir, cold_fallback=False) as pool:
                if args.check:
                    report = {"test_print": pool.test_print(), "status": pool.status()}
                    print(json.dumps(report, indent=2, ensure_ascii=False))
                if args.convert:
                    src, dst = args.convert
                    Path(dst).write_bytes(pool.convert(Path(src).read_bytes()))
        elif args.convert:
            src, dst = args.convert
            Path(dst).write_bytes(cold_convert(Path(src).read_bytes()))
    except FormsError as exc:
        print(exc.message, file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
