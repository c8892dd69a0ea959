"""``pickedge batch PROBLEM.json [--compare]``: the batching engine from the shell.

Reads a batching-v1 problem (a file, or ``-`` for stdin), prints the answer as
JSON on stdout. A problem that cannot be batched prints one line on stderr and
exits 2. ``--compare`` prints the total walk next to what a site does today:
first-come-first-served carts on S-shape and on optimal routes, one order per
tour.
"""

from __future__ import annotations

import click

from edge.cli.common import echo_json_by_key, fail, load_json_or_exit

EPILOG = """\b
Examples:
  pickedge batch problem.json                 the batches and their routes as JSON
  pickedge batch problem.json --compare       total walk next to FCFS and one order per tour
  cat problem.json | pickedge batch -         read the problem from stdin

\b
A problem (see contracts/batching-v1.md and docs/batching.md):
  {"layout": {"kind": "blocks", "aisles": 10, "aisle_pitch_m": 5.0, "blocks": 1,
              "block_length_m": 47.0, "depot": {"x": 0.0, "y": 0.0}},
   "capacity": {"units": 45, "orders": 4},
   "orders": [{"id": "SO-1", "picks": [{"id": "SO-1/1", "aisle": 3, "y": 12.5, "units": 2}]}],
   "time_limit_ms": 1000}
"""


@click.command(
    name="batch", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.argument("problem_file", metavar="PROBLEM.json")
@click.option(
    "--compare",
    is_flag=True,
    help="Print the total walk next to FCFS carts (S-shape, exact) and one order per tour.",
)
def batch_command(problem_file: str, compare: bool) -> None:
    """Batch orders onto carts with the shortest total walk and print the answer as JSON."""
    from edge.batching import baselines, batch

    problem = load_json_or_exit(problem_file)
    try:
        result = batch(problem)
        base = baselines(problem) if compare else {}
    except ValueError as exc:
        raise fail("error: " + str(exc)) from exc
    if not compare:
        echo_json_by_key(result)
        return
    best = result["total_length_m"]
    units = sum(b["units"] for b in result["batches"])
    rows = [
        (f"batched ({len(result['batches'])} carts, {result['elapsed_ms']:.0f} ms)", best),
        ("FCFS carts, S-shape routes", base["fcfs_s_shape_m"]),
        ("FCFS carts, optimal routes", base["fcfs_exact_m"]),
        ("one order per tour, S-shape", base["single_s_shape_m"]),
        ("one order per tour, optimal", base["single_exact_m"]),
    ]
    click.echo(f"{'':<40} {'walk':>10}   {'per unit':>8}   {'batched saves':>13}")
    for label, length in rows:
        if length is None:
            click.echo(f"{label:<40} {'n/a':>10}   (S-shape needs a 'blocks' layout)")
            continue
        per_unit = f"{length / units:8.2f}" if units else "     n/a"
        saves = f"{(length - best) / length * 100:12.1f} %" if length > 0 else "       0.0 %"
        click.echo(f"{label:<40} {length:10.1f} m {per_unit} m {saves if length != best else ''}")
