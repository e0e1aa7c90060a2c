"""``forms-service templates build|check``: the DOCX templates and their contract."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..cli_context import pass_settings
from ..config import Settings


@click.group("templates")
def templates() -> None:
    """Modèles DOCX : construction et vérification du contrat avec les définitions."""


@templates.command("check")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.option("--print", "with_print", is_flag=True,
              help="Imprime aussi chaque formulaire vierge et ses exemples (LibreOffice) et vérifie leur mise en page.")
@pass_settings
def check(settings: Settings, as_json: bool, with_print: bool) -> None:
    """Vérifie que chaque modèle et sa définition de formulaire concordent."""
    import json

    from .contract import check_all
    results = check_all(settings)
    if with_print:
        from .template_print_check import check_blank_prints
        for form_id, problems in check_blank_prints(settings).items():
            results.setdefault(form_id, []).extend(problems)
    broken = {k: v for k, v in results.items() if v}
    if as_json:
        click.echo(json.dumps({k: [p.as_dict(with_severity=False) for p in v] for k, v in results.items()},
                              ensure_ascii=False, indent=2))
    else:
        for form_id, problems in results.items():
            click.echo(f"{'OK ' if not problems else 'ERR'} {form_id}")
            for p in problems:
                click.echo(f"    [{p.rule}] {p.message}")
    if broken:
        click.echo(f"{sum(len(v) for v in broken.values())} problème(s) dans {len(broken)} modèle(s).", err=True)
        sys.exit(1)


@templates.command("build")
@click.argument("forms", nargs=-1)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dossier de sortie (par défaut : templates/docx).")
@pass_settings
def build(settings: Settings, forms: tuple[str, ...], out: Path | None) -> None:
    """Régénère les modèles DOCX depuis les définitions (écrase les modèles édités)."""
    from .template_builder import build_all
    target = out or Path(settings.templates_dir) / "docx"
    for path in build_all(target, list(forms) or None):
        click.echo(str(path))


commands = [templates]
