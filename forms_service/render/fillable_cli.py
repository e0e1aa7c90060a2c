"""``python -m forms_service.render.fillable_cli [--build [--force]] [--check] [FORM…]``:
rebuild the stale fillable PDFs of ``templates/pdf`` (needs LibreOffice), or list them."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..config import Settings
from .pool import ConverterPool
from .templates_pdf import build_templates_pdf, stale_templates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m forms_service.render.fillable_cli",
        description="Fillable PDFs of the forms (templates/pdf): build, or list the stale ones.")
    parser.add_argument("--build", action="store_true", help="rebuild the stale PDFs (needs LibreOffice)")
    parser.add_argument("--force", action="store_true", help="with --build: rebuild them all")
    parser.add_argument("--check", action="store_true", help="exit 1 when a PDF is stale")
    parser.add_argument("forms", nargs="*", help="only these forms")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    if args.build:
        with ConverterPool(size=2, work_dir=Path(settings.var_dir) / "lo-fillable",
                           cold_fallback=False) as pool:
            for form, path in build_templates_pdf(settings, pool, forms=args.forms or None,
                                                  force=args.force).items():
                print(f"{form}: {path}")
    stale = stale_templates(settings)
    for form in stale:
        print(f"périmé : {form}", file=sys.stderr)
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
