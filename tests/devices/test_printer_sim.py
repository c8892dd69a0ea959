"""The printer simulator, and the proof that a rendered label scans back to its SSCC.

The chain of the proof: CartonLabel → ZPL bytes → TCP → the simulator parses the
job → the barcode *it parsed* drawn as GS1-128 (python-barcode, Pillow) → read
back like a scanner would (zxing-cpp) → parsed as GS1 (biip) → the same SSCC.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import barcode
import biip
import pytest
import zxingcpp
from barcode.writer import ImageWriter

from devices.printer.client import PrinterLink
from devices.printer.zpl import GS, CartonLabel, ParsedField, render, render_batch
from simulators.printer import PrinterSimulator
from tests.support.processes import ProcessReaper

SSCCS = ["376123450000000016", "106141411234567897", "095012345000000010"]
TIMEOUT = 1.0


def labels() -> list[CartonLabel]:
    return [
        CartonLabel(sscc, "1010", "Wien", "SO-9", n, len(SSCCS), company_prefix_length=7)
        for n, sscc in enumerate(SSCCS, start=1)
    ]


def scan(field: ParsedField) -> biip.ParseResult:
    """Draw the GS1-128 symbol a printer would print for ``field``, read it like a scanner."""
    assert field.symbology == "gs1-128"
    fnc1 = barcode.get_barcode_class("gs1_128").FNC1_CHAR  # python-barcode's FNC1
    symbol = barcode.get("gs1_128", field.data.replace(GS, fnc1), writer=ImageWriter())
    image = symbol.render(writer_options={"write_text": False, "module_width": 0.3})
    (read,) = zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain)
    assert read.format == zxingcpp.BarcodeFormat.Code128
    assert read.symbology_identifier == "]C1"  # Code 128 with a leading FNC1: GS1-128
    return biip.parse(read.symbology_identifier + read.text)


@pytest.fixture
async def sim() -> AsyncIterator[PrinterSimulator]:
    async with PrinterSimulator() as printer:
        yield printer


async def test_printed_barcode_scans_back_to_the_rendered_sscc(sim: PrinterSimulator) -> None:
    await PrinterLink(sim.url, timeout=TIMEOUT).print_job(render_batch(labels()))
    assert len(sim.printed) == len(SSCCS)
    for label, printed in zip(labels(), sim.printed, strict=True):
        (field,) = printed.barcodes
        result = scan(field)
        assert result.sscc is not None, result.sscc_error
        assert result.sscc.value == label.sscc
        assert result.gs1_message is not None
        assert [e.ai.ai for e in result.gs1_message.element_strings] == ["00"]
        # and the line under it says the same, grouped
        assert f"(00) {result.sscc.as_hri(company_prefix_length=7)}" in printed.texts


# --- faults and held formats -----------------------------------------------------------


@pytest.mark.parametrize("condition", ["paused", "head-open", "paper-out"])
async def test_formats_are_held_while_faulted_and_printed_in_order_after(
    sim: PrinterSimulator, condition: str
) -> None:
    link = PrinterLink(sim.url, timeout=TIMEOUT)
    sim.set_condition(condition)
    await link.send(render_batch(labels()))
    await sim.wait_for(lambda s: len(s.pending) == 3)
    assert sim.printed == []
    status = await link.status()
    assert status.problem == condition.replace("-", " ") and status.formats_in_buffer == 3
    sim.set_condition(condition, False)
    assert [p.barcodes[0].data[2:] for p in sim.printed] == SSCCS
    assert sim.pending == []


async def test_zebra_host_commands_pause_resume_cancel(sim: PrinterSimulator) -> None:
    link = PrinterLink(sim.url, timeout=TIMEOUT)
    await link.send(b"~PP" + render_batch(labels()))
    await sim.wait_for(lambda s: len(s.pending) == 3)
    assert (await link.status()).paused
    await link.send(b"~JA")  # cancel all: the held formats are dropped
    await sim.wait_for(lambda s: not s.pending)
    await link.send(b"~PS" + render(labels()[0]))
    await sim.wait_for(lambda s: len(s.printed) == 1)
    assert (await link.status()).ready


async def test_copies_bad_formats_and_junk(sim: PrinterSimulator) -> None:
    job = render(labels()[0]).replace(b"^XZ", b"^PQ2^XZ") + b"^XA^ZZ^XZ" + b"hello"
    await PrinterLink(sim.url, timeout=TIMEOUT).send(job)
    await sim.wait_for(lambda s: len(s.errors) == 2)
    assert len(sim.printed) == 2  # ^PQ2: two physical labels
    assert "unsupported ZPL command ^ZZ" in sim.errors[0]
    assert "junk" in sim.errors[1]


async def test_out_dir_keeps_each_printed_label(tmp_path: Path) -> None:
    async with PrinterSimulator(out=tmp_path / "labels") as sim:
        await PrinterLink(sim.url, timeout=TIMEOUT).print_job(render_batch(labels()[:2]))
    files = sorted(p.name for p in (tmp_path / "labels").iterdir())
    assert files == [f"label-00000{n}.{ext}" for n in (1, 2) for ext in ("json", "zpl")]
    assert (tmp_path / "labels" / "label-000002.zpl").read_bytes() == render(labels()[1]).strip()
    fields = json.loads((tmp_path / "labels" / "label-000001.json").read_text())["fields"]
    assert {"x": 94, "y": 560, "data": "00" + SSCCS[0], "symbology": "gs1-128"} in fields


async def test_control_port() -> None:
    async with PrinterSimulator(control_port=0, media=1) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.control_port)

        async def say(line: str) -> str:
            writer.write(line.encode() + b"\n")
            return (await asyncio.wait_for(reader.readline(), 5)).decode().strip()

        link = PrinterLink(sim.url, timeout=0.3)
        try:
            assert await say("head-open on") == ("head-open; printed 0, held 0, media 1, listening")
            assert (await link.status()).head_open
            assert (await say("head-open off")).startswith("ready;")
            await link.send(render_batch(labels()[:2]))  # the roll holds one label
            await sim.wait_for(lambda s: s.conditions.paper_out)
            assert await say("load-paper 5") == "ready; printed 2, held 0, media 4, listening"
            assert (await say("mute on")).startswith("mute;")
            with pytest.raises(TimeoutError):
                await link.status()
            await say("mute off")
            assert (await say("refuse 0.3")).endswith("refusing")
            with pytest.raises(ConnectionError):
                await link.status()
            await sim.wait_for(lambda s: s.describe().endswith("listening"))
            assert (await link.status()).ready
            assert (await say("fly")).startswith("error: unknown command")
            assert (await say("media many")).startswith("error:")
        finally:
            writer.close()


async def test_sim_printer_command(processes: ProcessReaper, tmp_path: Path) -> None:
    proc = await processes.exec(
        sys.executable,
        "-c",
        "from edge.cli import main; main()",
        "sim",
        "printer",
        "--port",
        "0",
        "--control-port",
        "0",
        "--out",
        str(tmp_path),
        "--fault",
        "paused",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None

    async def line() -> str:
        assert proc.stdout is not None
        return (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()

    first = await line()
    assert first.startswith("printer simulator on tcp://127.0.0.1:") and "paused" in first
    url = first.split()[3]
    control = (await line()).split()[2].rsplit(":", 1)[1]
    link = PrinterLink(url, timeout=5.0)
    assert (await link.status()).paused
    await link.send(render(labels()[0]))
    reader, writer = await asyncio.open_connection("127.0.0.1", int(control))
    writer.write(b"paused off\n")
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"ready; printed 1")
    writer.close()
    while not (printed := await line()).startswith("printed 1: "):
        continue  # the simulator's other log lines
    assert SSCCS[0] in printed and "CARTON 1 OF 3" in printed
    assert (tmp_path / "label-000001.zpl").exists()
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
