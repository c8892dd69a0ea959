"""Alert rules evaluated on the box (issue 13).

:mod:`edge.alerting.rules` decides, purely, which alerts should be open from a
snapshot of figures; :mod:`edge.alerting.engine` reads the figures, runs the
rules every ``[alerts] interval_s`` and writes the difference (raised once,
cleared once, both upstream as sync-v1 ``alert`` events). The rules, their
keys and when each clears: docs/operations.md, "Alert rules".
"""

from edge.alerting.engine import AlertEngine, Changes, reconcile
from edge.alerting.rules import KINDS, Figures, Want, evaluate

__all__ = ["KINDS", "AlertEngine", "Changes", "Figures", "Want", "evaluate", "reconcile"]
