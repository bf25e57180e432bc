"""Exceptions raised by the flor library.

Every message is one sentence naming the object at fault and the fix; only the CLI turns
them into output and exit codes (2 for usage errors, 1 for failures).
"""

from __future__ import annotations


class FlorError(Exception):
    """Base class: a failure the user can act on."""

    exit_code = 1


class UsageError(FlorError):
    """The input was wrong (bad arguments, bad names, bad SQL)."""

    exit_code = 2


class NotInGitRepo(UsageError):
    pass


class ArgError(UsageError):
    """A `--kwargs` value is malformed, unknown or cannot be cast."""


class StoreError(FlorError):
    """The store cannot be opened, is corrupt or has an unsupported schema."""


class QueryError(UsageError):
    """A query is invalid or tries to write."""


class CheckpointError(FlorError):
    """An object cannot be checkpointed or a checkpoint cannot be restored."""


class PropagateError(FlorError):
    """A source cannot be parsed or a statement cannot be propagated."""


class ReplayError(FlorError):
    """A replay cannot be planned or run."""
