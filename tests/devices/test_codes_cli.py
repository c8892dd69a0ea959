"""`pickedge decode` through the real CLI group (click's runner, no mocks)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from edge.cli import cli


def run(*args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(cli, ["decode", *args])
    return result.exit_code, json.loads(result.output)


def test_gs_written_as_text_and_aim_inside_the_code() -> None:
    for spelled in ("<GS>", "\\x1d", "\x1d", "{GS}"):
        code, out = run("]C1010952123454321310ABC123" + spelled + "17261231")
        assert code == 0
        assert out["symbology"] == "]C1"
        assert [e["ai"] for e in out["elements"]] == ["01", "10", "17"]  # type: ignore[union-attr]
        assert out["elements"][1]["title"] == "BATCH/LOT"  # type: ignore[index]


def test_symbology_option() -> None:
    code, out = run("6291041500213", "--symbology", "]E0")
    assert (code, out["kind"], out["gtin14"]) == (0, "gtin", "06291041500213")


def test_invalid_code_exits_2_with_reason() -> None:
    code, out = run("]C10109521234543214")
    assert code == 2
    assert out["valid"] is False
    assert out["error"] == "invalid_code"
    assert "check digit" in str(out["reason"])


def test_epc_option() -> None:
    code, out = run("--epc", "3074257BF7194E4000001A85")
    assert code == 0
    assert out["epc"]["uri"] == "urn:epc:id:sgtin:0614141.812345.6789"  # type: ignore[index]
    assert out["epc"]["filter"] == 3  # type: ignore[index]
    code, out = run("--epc", "E2801160600002054CC2096F")
    assert (code, out["kind"]) == (0, "opaque_epc")


def test_help_has_examples() -> None:
    result = CliRunner().invoke(cli, ["decode", "--help"])
    assert result.exit_code == 0
    assert "Examples" in result.output
    assert "--symbology" in result.output
