"""``pickedge route PROBLEM.json [--compare]``: the pick-path engine from the shell.

Reads a routing-v1 problem (a file, or ``-`` for stdin), prints the route as JSON
on stdout. A problem that cannot be routed prints one line on stderr and exits 2.
"""

from __future__ import annotations

import click

from edge.cli.common import echo_json_by_key, fail, load_json_or_exit

EPILOG = """\b
Examples:
  pickedge route problem.json                 the route as JSON
  pickedge route problem.json --compare       optimal length next to each heuristic's
  cat problem.json | pickedge route -         read the problem from stdin

\b
A problem (see contracts/routing-v1.md and docs/routing.md):
  {"layout": {"kind": "blocks", "aisles": 10, "aisle_pitch_m": 3.0,
              "blocks": 2, "block_length_m": 20.0, "depot": {"x": 0.0, "y": 0.0}},
   "picks": [{"id": "L-0001", "aisle": 3, "y": 12.5}]}
"""


@click.command(
    name="route", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.argument("problem_file", metavar="PROBLEM.json")
@click.option(
    "--compare",
    is_flag=True,
    help="Print the optimal length next to the length of each classic heuristic.",
)
def route_command(problem_file: str, compare: bool) -> None:
    """Compute the shortest pick path of a routing problem and print it as JSON."""
    from edge.routing import route
    from edge.routing.heuristics import heuristic_lengths

    problem = load_json_or_exit(problem_file)
    try:
        result = route(problem)
        # the classic heuristics exist for conventional layouts only
        blocks = problem["layout"].get("kind") == "blocks"
        heuristics = heuristic_lengths(problem) if compare and blocks else {}
    except ValueError as exc:
        raise fail("error: " + str(exc)) from exc
    if not compare:
        echo_json_by_key(result)
        return
    best = result["length_m"]
    label = "optimal" if result["optimal"] else "best found"
    click.echo(f"{label + ' (' + result['algorithm'] + ')':<34} {best:10.3f} m")
    if not heuristics:
        click.echo("(the classic heuristics are defined for 'blocks' layouts only)")
    for name, length in heuristics.items():
        extra = f"+{(length - best) / best * 100:.1f} %" if best > 0 else "+0.0 %"
        click.echo(f"{name:<34} {length:10.3f} m   {extra}")
