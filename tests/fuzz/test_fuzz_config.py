"""Fuzz the configuration loader (edge/config.py ``load_config``) with any
TOML text: arbitrary text, the example configuration with its bytes mutated,
and the example configuration's values replaced by wrong types, numbers beyond
any range, NaN and infinity, unknown keys and deep nesting.

``load_config`` raises nothing but :class:`~edge.errors.ConfigError` (listing
every problem), within the budget."""

from __future__ import annotations

import json
import math
import tomllib
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.config import load_config
from edge.errors import ConfigError
from tests.fuzz._harness import FUZZ, json_mutated, mutated, within_budget

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "example.toml"
_TEXT = EXAMPLE.read_text(encoding="utf-8")
_DOC = tomllib.loads(_TEXT)
_names = count()


def toml_value(value: Any) -> str | None:
    """``value`` as TOML (inline tables and arrays); None for JSON null,
    which TOML has no word for (the key is left out)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string (a lone surrogate: invalid TOML)
    if isinstance(value, list):
        items = [t for t in map(toml_value, value) if t is not None]
        return "[" + ", ".join(items) + "]"
    assert isinstance(value, dict)
    pairs = [(json.dumps(str(k)), toml_value(v)) for k, v in value.items()]
    return "{" + ", ".join(f"{k} = {v}" for k, v in pairs if v is not None) + "}"


def toml_document(doc: Any) -> str:
    if not isinstance(doc, dict):
        return f"value = {toml_value(doc) or 0}\n"
    lines = [f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in doc.items()]
    return "\n".join(line for line in lines if not line.endswith("= None")) + "\n"


@pytest.fixture(scope="module")
def where(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config")


def _load(where: Path, text: str | bytes) -> None:
    path = where / f"c{next(_names)}.toml"
    if isinstance(text, str):
        try:
            path.write_text(text, encoding="utf-8")
        except UnicodeEncodeError:
            path.write_bytes(text.encode("utf-8", "surrogatepass"))
    else:
        path.write_bytes(text)
    within_budget(lambda: load_config(path, env={}), declared=(ConfigError,))
    path.unlink()


def test_the_example_still_loads_as_toml() -> None:
    assert tomllib.loads(toml_document(_DOC)) == _DOC


@FUZZ
@given(text=st.text(max_size=400))
def test_any_text(where: Path, text: str) -> None:
    _load(where, text)


@FUZZ
@given(data=st.data())
def test_mutated_example_bytes(where: Path, data: st.DataObject) -> None:
    _load(where, data.draw(mutated(st.just(_TEXT.encode("utf-8")))))


@FUZZ
@given(data=st.data())
def test_mutated_example_values(where: Path, data: st.DataObject) -> None:
    doc = data.draw(json_mutated(st.just(_DOC).map(lambda d: json.loads(json.dumps(d)))))
    _load(where, toml_document(doc))


@FUZZ
@given(
    section=st.sampled_from(sorted(k for k, v in _DOC.items() if isinstance(v, dict))),
    value=st.sampled_from(
        [
            "9" * 30,
            "-" + "9" * 30,
            "1e999",
            "nan",
            "-inf",
            '"\\u0000"',
            "[[[[[[]]]]]]",
            "{a = {b = 1}}",
        ]
    ),
)
def test_every_key_with_an_extreme_value(where: Path, section: str, value: str) -> None:
    """Each key of a section in turn given a value past every range."""
    for key in _DOC[section]:
        doc = dict(_DOC)
        text = toml_document({k: v for k, v in doc.items() if k != section})
        body = ", ".join(
            f"{json.dumps(k)} = {value if k == key else toml_value(v)}"
            for k, v in _DOC[section].items()
            if toml_value(v) is not None
        )
        _load(where, text + f"{section} = {{{body}}}\n")
