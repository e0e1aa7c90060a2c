"""The template contract: a DOCX template and its form definition agree.

A département edits the wording of a template in Word; this check tells it at
once what the edit broke: a tag Word split or mangled (named by its
paragraph), a variable the definition does not know, a printed field or an
option box that is no longer in the template, a box for an unknown code.
It reads the template's Jinja syntax tree; nothing is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from docxtpl import DocxTemplate
from jinja2 import nodes

from ..catalogue import FormDefinition, catalogue
from ..config import Settings
from ..errors import Problem, TemplateError
from .context import SERVICE_VARIABLES, make_env
from .docx import compile_template

LOOP_HELPERS = {"chunk", "loop"}


@dataclass
class _Use:
    path: str            # full path; list columns as "pap.*.code"
    box: str | bool | None = None   # option code of a box, True for a bool box
    zone: bool = False


def _chain(node: nodes.Node) -> list[str] | None:
    """['suspension', 'motifs'] for ``suspension.motifs``; None if not a plain chain."""
    parts: list[str] = []
    while isinstance(node, nodes.Getattr):
        parts.append(node.attr)
        node = node.node
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return None
    if isinstance(node, nodes.Name):
        parts.append(node.name)
        return list(reversed(parts))
    return None


def _walk(node: nodes.Node, loops: dict[str, str], uses: list[_Use]) -> None:
    """Collect the paths a template reads, resolving loop variables to their list."""
    if isinstance(node, nodes.For):
        target = node.target.name if isinstance(node.target, nodes.Name) else None
        it = node.iter
        inner = dict(loops)
        if target:
            if isinstance(it, nodes.Filter) and it.name == "pages":
                chain = _chain(it.node)
                if chain:
                    inner[target] = "PAGES:" + ".".join(chain)
            else:
                chain = _chain(it)
                if chain and chain[0] in loops and loops[chain[0]].startswith("PAGES:") and chain[1:] == ["rows"]:
                    inner[target] = loops[chain[0]][6:] + ".*"
                elif chain:
                    inner[target] = "ITER:" + ".".join(chain)
        _walk(node.iter, loops, uses)
        for child in node.body + node.else_:
            _walk(child, inner, uses)
        return
    if isinstance(node, nodes.Filter) and node.name in ("box", "zone"):
        chain = _chain(node.node)
        if chain:
            path = _resolve(chain, loops)
            if path:
                if node.name == "zone":
                    uses.append(_Use(path, zone=True))
                else:
                    code = node.args[0].value if node.args and isinstance(node.args[0], nodes.Const) else True
                    uses.append(_Use(path, box=code))
        for child in node.iter_child_nodes():
            if child is not node.node:
                _walk(child, loops, uses)
        return
    if isinstance(node, nodes.Name) and node.ctx == "load":
        path = _resolve([node.name], loops)
        if path:
            uses.append(_Use(path))
        return
    if isinstance(node, nodes.Getattr):
        chain = _chain(node)
        if chain:
            path = _resolve(chain, loops)
            if path:
                uses.append(_Use(path))
            return
    for child in node.iter_child_nodes():
        _walk(child, loops, uses)


def _resolve(chain: list[str], loops: dict[str, str]) -> str | None:
    root = chain[0]
    if root in loops:
        target = loops[root]
        if target.startswith(("PAGES:", "ITER:")):
            return None
        return ".".join([target] + chain[1:])
    if root in SERVICE_VARIABLES or root in LOOP_HELPERS:
        return None
    return ".".join(chain)


def _known(fd: FormDefinition, path: str) -> bool:
    """A field's path, a group's prefix, or a list column (``pap.*.code``)."""
    if "*" in path:
        list_path, _, col = path.partition(".*.")
        f = fd.field(list_path)
        return bool(f and f.type == "list" and any(c.path == col or col.startswith(c.path + ".")
                                                   for c in f.item_fields))
    if fd.field(path):
        return True
    return any(f.path.startswith(path + ".") or (f.type == "signature" and f.path == path)
               for f in fd.fields)


def _template_xml(path: Path) -> str:
    """The body and headers/footers, with the tags Word split re-joined (as docxtpl does)."""
    tpl = DocxTemplate(str(path))
    tpl.init_docx()
    xml = tpl.patch_xml(tpl.get_xml())
    for rel in tpl.docx.part.rels.values():
        if rel.reltype.endswith(("/header", "/footer")):
            xml += tpl.patch_xml(rel.target_part.blob.decode("utf-8"))
    return xml


def check_template(fd: FormDefinition, path: Path) -> list[Problem]:
    """Every way ``path`` breaks the contract with ``fd``."""
    env = make_env()
    name = path.name
    try:
        compile_template(path, env)           # syntax, named by paragraph
    except TemplateError as exc:
        return [Problem(fd.id, "balise_invalide", exc.message)]
    except Exception as exc:  # a file Word could not have saved: not a DOCX at all
        return [Problem(fd.id, "modele_illisible", f"{name} : fichier illisible ({exc.__class__.__name__})")]
    problems: list[Problem] = []
    tpl = DocxTemplate(str(path))
    top = {f.path.split(".")[0] for f in fd.fields}
    for var in sorted(tpl.get_undeclared_template_variables(env)):
        if var not in top and var not in SERVICE_VARIABLES:
            problems.append(Problem(var, "variable_inconnue",
                                    f"{name} : variable « {var} » inconnue du formulaire {fd.id}"))
    ast = env.parse(_template_xml(path))
    uses: list[_Use] = []
    _walk(ast, {}, uses)
    for u in uses:
        if not _known(fd, u.path):
            problems.append(Problem(u.path, "variable_inconnue",
                                    f"{name} : « {u.path} » n'est pas un champ du formulaire {fd.id}"))
    if fd.kind == "form":
        problems += _coverage(fd, uses, name)
    from .template_print_check import check_docx, check_list_rows
    problems += check_docx(path)              # the print style: nothing under 7 pt
    problems += check_list_rows(fd, path)     # a list row holds its longest values
    return _dedupe(problems)


def _coverage(fd: FormDefinition, uses: list[_Use], name: str) -> list[Problem]:
    problems = []
    printed_paths = {u.path for u in uses if u.box is None and not u.zone}
    boxes = {(u.path, u.box) for u in uses if u.box is not None}
    zones = {u.path for u in uses if u.zone}

    def need(f, path: str, label: str) -> None:
        if f.type in ("choice", "multi") and path in printed_paths and not any(p == path for p, _ in boxes):
            return   # a code among many, written in the cell rather than ticked
        if f.type in ("choice", "multi"):
            for o in f.options:
                if (path, o.code) not in boxes:
                    problems.append(Problem(path, "case_absente",
                                            f"{name} : la case « {o.label} » ({path} = {o.code}) n'est pas imprimée"))
            for (p, code) in boxes:
                if p == path and code not in f.codes:
                    problems.append(Problem(path, "code_inconnu",
                                            f"{name} : case pour un code inconnu « {code} » ({path})"))
        elif f.type == "bool":
            if (path, True) not in boxes:
                problems.append(Problem(path, "case_absente", f"{name} : la case « {label} » n'est pas imprimée"))
        elif f.type == "signature":
            if path not in zones:
                problems.append(Problem(path, "zone_absente",
                                        f"{name} : la zone de signature « {label} » n'est pas imprimée"))
        elif path not in printed_paths:
            problems.append(Problem(path, "champ_absent", f"{name} : le champ « {label} » ({path}) n'est pas imprimé"))

    for f in fd.fields:
        if not f.printed:
            continue
        if f.type == "list":
            for c in f.item_fields:
                if c.printed:
                    need(c, f"{f.path}.*.{c.path}", c.label)
        else:
            need(f, f.path, f.label)
    return problems


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        key = (p.path, p.rule, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def check_all(settings: Settings) -> dict[str, list[Problem]]:
    """Problems per form id, for every form and reference list that has a template."""
    out: dict[str, list[Problem]] = {}
    for fd in catalogue.forms():
        path = Path(settings.templates_dir) / "docx" / (fd.template or f"{fd.id}.docx")
        if not path.exists():
            out[fd.id] = [Problem(fd.id, "modele_absent", f"Modèle absent : {path.name}")]
            continue
        out[fd.id] = check_template(fd, path)
    return out
