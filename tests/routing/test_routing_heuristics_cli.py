"""The classic heuristics as baselines, and the ``pickedge route`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from oracle_routing import mm, sequence_length
from test_routing_oracle import problems

from edge.cli.route import route_command
from edge.routing import route
from edge.routing.heuristics import (
    HEURISTICS,
    heuristic_length,
    heuristic_lengths,
    heuristic_sequence,
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(problems(max_picks=14))
def test_heuristics_never_beat_the_optimum(problem: dict[str, Any]) -> None:
    best = mm(route(problem)["length_m"])
    for name in HEURISTICS:
        length = mm(heuristic_length(problem, name))
        assert length >= best, name
        seq = heuristic_sequence(problem, name)
        assert sorted(seq) == sorted(p["id"] for p in problem["picks"])
        # the walk the rule prescribes is never shorter than its visiting order
        # walked along shortest paths
        assert sequence_length(problem, seq) <= length


def one_block(*spots: tuple[int, float], depot_x: float = 0.0) -> dict[str, Any]:
    return {
        "layout": {
            "kind": "blocks",
            "aisles": 6,
            "aisle_pitch_m": 3.0,
            "blocks": 1,
            "block_length_m": 10.0,
            "depot": {"x": depot_x, "y": 0.0},
        },
        "picks": [{"id": f"L{i}", "aisle": a, "y": y} for i, (a, y) in enumerate(spots)],
    }


def test_textbook_one_block_walks() -> None:
    problem = one_block((0, 2.0), (2, 9.0), (4, 1.0))
    lengths = heuristic_lengths(problem)
    horizontal = 2 * 12
    assert lengths["return"] == pytest.approx(horizontal + 4 + 18 + 2)
    assert lengths["s-shape"] == pytest.approx(horizontal + 10 + 10 + 2)
    # midpoint/largest gap: outer aisles traversed; aisle 2 from the back (9 > 5)
    assert lengths["midpoint"] == pytest.approx(horizontal + 20 + 2)
    assert lengths["largest-gap"] == pytest.approx(horizontal + 20 + 2)
    assert lengths["combined"] == pytest.approx(min(lengths.values()))
    assert route(problem)["length_m"] <= min(lengths.values())


def test_unknown_heuristic_and_graph_layouts_are_errors() -> None:
    with pytest.raises(ValueError, match="heuristic"):
        heuristic_length(one_block((0, 2.0)), "zigzag")
    graph = {
        "layout": {
            "kind": "graph",
            "nodes": [{"id": "a", "x": 0, "y": 0}],
            "edges": [],
            "depot": "a",
        },
        "picks": [],
    }
    with pytest.raises(ValueError, match=r"^layout\.kind"):
        heuristic_length(graph, "s-shape")


# --------------------------------------------------------------------------- CLI


def write(tmp_path: Path, problem: Any) -> str:
    path = tmp_path / "problem.json"
    path.write_text(json.dumps(problem) if not isinstance(problem, str) else problem)
    return str(path)


def test_cli_prints_the_route(tmp_path: Path) -> None:
    problem = one_block((0, 2.0), (2, 9.0))
    result = CliRunner().invoke(route_command, [write(tmp_path, problem)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["length_m"] == route(problem)["length_m"]
    assert out["optimal"] is True


def test_cli_compare(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        route_command, [write(tmp_path, one_block((0, 2.0), (5, 9.0))), "--compare"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("optimal")
    assert [line.split()[0] for line in lines[1:]] == list(HEURISTICS)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ({"layout": {"kind": "spiral"}, "picks": []}, "layout.kind"),
        ({**one_block((0, 2.0)), "picks": [{"id": "a", "aisle": 0, "y": 10.0}]}, "picks[0].y"),
        ("{not json", "not JSON"),
    ],
)
def test_cli_bad_problem_exits_2_with_one_line(tmp_path: Path, content: Any, needle: str) -> None:
    result = CliRunner().invoke(route_command, [write(tmp_path, content)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert needle in result.stderr


def test_cli_missing_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(route_command, [str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_cli_help_has_examples() -> None:
    result = CliRunner().invoke(route_command, ["--help"])
    assert result.exit_code == 0
    assert "--compare" in result.stdout
    assert "Examples" in result.stdout


ROOT = Path(__file__).resolve().parents[2]


def test_cli_in_a_real_process(tmp_path: Path) -> None:
    code = "from edge.cli.route import route_command; route_command()"
    good = subprocess.run(
        [sys.executable, "-c", code, write(tmp_path, one_block((3, 4.0)))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["length_m"] == pytest.approx(2 * 9 + 2 * 4)
    bad = subprocess.run(
        [sys.executable, "-c", code, write(tmp_path, {"layout": {"kind": "blocks"}, "picks": []})],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: layout.aisles: missing"


def test_cli_compare_on_a_graph_layout(tmp_path: Path) -> None:
    problem = {
        "layout": {
            "kind": "graph",
            "nodes": [{"id": "D", "x": 0, "y": 0}, {"id": "A", "x": 0, "y": 10}],
            "edges": [{"from": "D", "to": "A"}],
            "depot": "D",
        },
        "picks": [{"id": "p", "edge": 0, "offset_m": 4.0}],
    }
    result = CliRunner().invoke(route_command, [write(tmp_path, problem), "--compare"])
    assert result.exit_code == 0, result.output
    assert "8.000 m" in result.stdout
    assert "blocks" in result.stdout
