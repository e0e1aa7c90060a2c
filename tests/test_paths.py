"""The one dotted-path behaviour (forms_service.catalogue.paths)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from forms_service.catalogue.paths import get_path, has_path, join, nest, set_path, unflatten

DATA = {"beneficiaire": {"nom": "X", "vide": None}, "pap": [{"code": "A.1"}, {"code": None}], "n": 3}


@pytest.mark.parametrize("path, expected", [
    ("beneficiaire.nom", "X"),
    ("pap.0.code", "A.1"),
    ("pap.1", {"code": None}),
    ("", DATA),
])
def test_get_reads_groups_and_rows(path, expected):
    assert get_path(DATA, path) == expected


@pytest.mark.parametrize("path", ["absent", "beneficiaire.absent", "pap.2.code", "pap.x", "pap.-1",
                                  "n.sous", "beneficiaire.nom.lettre"])
def test_get_a_missing_step_is_the_default(path):
    assert get_path(DATA, path) is None
    assert get_path(DATA, path, "défaut") == "défaut"
    assert not has_path(DATA, path)


def test_a_present_none_is_not_the_default():
    assert get_path(DATA, "beneficiaire.vide", "défaut") is None
    assert has_path(DATA, "beneficiaire.vide")


def test_set_creates_dicts_and_lists_on_the_way():
    data: dict = {}
    set_path(data, "beneficiaire.nom", "X")
    set_path(data, "pap.1.code", "B.2")
    set_path(data, "pap.0.code", "A.1")
    assert data == {"beneficiaire": {"nom": "X"}, "pap": [{"code": "A.1"}, {"code": "B.2"}]}
    set_path(data, "beneficiaire.nom", "Y")
    assert data["beneficiaire"] == {"nom": "Y"}
    set_path(data, "pap.4.code", "C")                # rows skipped are empty rows
    assert data["pap"][2:] == [{}, {}, {"code": "C"}]
    set_path(data, "motifs.2", "x")                  # values skipped are None
    assert data["motifs"] == [None, None, "x"]


def test_set_into_a_text_is_a_bug_not_an_overwrite():
    with pytest.raises(TypeError):
        set_path({"a": "texte"}, "a.b", 1)
    with pytest.raises(TypeError):
        set_path({"a": []}, "a.b", 1)


def test_nest_join_unflatten():
    assert nest("a.b", 1) == {"a": {"b": 1}}
    assert join("pap", 0, "code") == "pap.0.code" and join("", "a") == "a"
    assert unflatten({"pap.0.code": "A", "pap.1.code": "B", "x.y": 1}) == \
        {"pap": [{"code": "A"}, {"code": "B"}], "x": {"y": 1}}


names = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)
steps = st.lists(st.one_of(names, st.integers(0, 3).map(str)), min_size=1, max_size=5) \
    .filter(lambda p: not p[0].isdigit())


@given(steps, st.integers())
def test_what_is_set_is_got_back(parts, value):
    path = ".".join(parts)
    data: dict = {}
    set_path(data, path, value)
    assert get_path(data, path) == value
    assert get_path(data, path + ".absent", "d") == "d"
