"""Reading the catalogue's YAML: definitions, the EDE grid, the programme's parameters.

YAML 1.2 booleans only (``true``/``false``): in YAML 1.1 « on », « off », « yes »,
« no » are booleans, which would turn a key like ``on:`` or a code like ``no``
into True/False.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import yaml


class _DataLoader(yaml.SafeLoader):
    """A SafeLoader whose only booleans are true/false."""


_DataLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_DataLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def parse_yaml(text) -> Any:
    return yaml.load(text, Loader=_DataLoader)  # noqa: S506 (a SafeLoader subclass)


def load_yaml(package: str, name: str) -> Any:
    with resources.files(package).joinpath(name).open(encoding="utf-8") as fh:
        return parse_yaml(fh)
