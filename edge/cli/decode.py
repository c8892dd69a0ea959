"""``pickedge decode``: print what a scanned code or an EPC means, as JSON.

Promises: reads only its arguments, prints one JSON object on stdout, exits 0
for a valid code and 2 for an invalid one (with the reason in the JSON). Never
touches the database or a device.
"""

from __future__ import annotations

import json
import sys

import click

from devices.codes import decode, decode_epc
from devices.codes.aim import is_aim
from devices.errors import CodeError

EXIT_INVALID = 2


def unescape_gs(text: str) -> str:
    """GS written as ``<GS>``, ``\\x1d``, ``\\u001d``, ``{GS}`` or ``^]`` becomes byte 0x1D.

    A shell cannot easily pass the control character, so field engineers type it.
    """
    for spelled in ("<GS>", "<gs>", "{GS}", "\\x1d", "\\x1D", "\\u001d", "\\u001D", "^]"):
        text = text.replace(spelled, "\x1d")
    return text


@click.command(
    "decode",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  pickedge decode ']C1010952123454321310ABC123<GS>17261231'
  pickedge decode 0109521234543213            GS1 element string, GTIN
  pickedge decode '(00)106141412345678908'    HRI with parentheses, SSCC
  pickedge decode 9521234543213 --symbology ']E0'
  pickedge decode 3074257BF7194E4000001A85    SGTIN-96 EPC with filter
  pickedge decode --epc E2801160600002054CC2096F   opaque (non-GS1) EPC
  pickedge decode A-01-02                     location label
Exit status: 0 valid, 2 invalid (the JSON says why).""",
)
@click.argument("code")
@click.option(
    "--symbology",
    "-s",
    metavar="AIM",
    help="AIM symbology id the scanner reported, e.g. ']C1' (default: from the code).",
)
@click.option("--epc", "as_epc", is_flag=True, help="Treat CODE as EPC hex from a tag read.")
@click.option("--compact", is_flag=True, help="One line of JSON instead of indented.")
def decode_command(code: str, symbology: str | None, as_epc: bool, compact: bool) -> None:
    """Explain what a scanned code or EPC means, as JSON.

    CODE may contain GS as the byte 0x1D or written as <GS> or \\x1d, and may
    start with an AIM symbology id (]C1, ]d2, ]E0…).
    """
    text = unescape_gs(code)
    indent = None if compact else 2
    if symbology is not None and not is_aim(symbology):
        raise click.BadParameter(
            "an AIM id is ']' + letter + modifier, e.g. ']C1'", param_hint="--symbology"
        )
    try:
        result = decode_epc(text) if as_epc else decode(text, symbology)
    except CodeError as exc:
        out = {
            "valid": False,
            "error": exc.code,
            "reason": str(exc),
            "input": text.replace("\x1d", "<GS>"),
        }
        if symbology is not None:
            out["symbology"] = symbology
        click.echo(json.dumps(out, indent=indent, ensure_ascii=False))
        sys.exit(EXIT_INVALID)
    click.echo(json.dumps(result.to_json(), indent=indent, ensure_ascii=False))
