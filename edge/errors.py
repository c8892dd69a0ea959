"""The error tree of the edge application.

Every error the edge raises on purpose derives from :class:`PickEdgeError` and
carries a stable ``code`` (snake_case) that the PDA API, logs and metrics use.
The message is for a person: it names the thing that is wrong and, where there
is one, what to do about it. Builtins are mixed in where they fit so callers can
catch ``ValueError`` or ``OSError`` without knowing the project's tree.
"""

from __future__ import annotations

from common.errors import PickEdgeError

__all__ = ["ConfigError", "PickEdgeError"]


class ConfigError(PickEdgeError, ValueError):
    """The configuration cannot be used; ``problems`` lists every finding."""

    code = "config_invalid"
    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))
