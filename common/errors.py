"""The root of PickEdge's own errors.

Every error raised on purpose derives from :class:`PickEdgeError` and carries a
stable ``code`` (snake_case) that the PDA API, the sync protocol, logs and
metrics use. The message is for a person: it names the thing that is wrong and,
where there is one, what to do about it. Each layer owns its subtree (the store
its :mod:`edge.store.errors`, the protocol :mod:`cloud_sync.errors`); builtins
are mixed in where they fit so callers can catch ``ValueError`` or ``OSError``
without knowing the tree.
"""

from __future__ import annotations


class PickEdgeError(Exception):
    """Root of PickEdge's own errors."""

    code = "internal_error"
    #: process exit code when this error ends a CLI command
    exit_code = 1
