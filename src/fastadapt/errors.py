"""The errors a user can cause, in one place, and the one line each becomes on the command line.

Each names what was wrong (the file, the field, the value). The command line turns every one of
``USER_ERRORS`` into ``fastadapt: error: <one line>`` and exit status 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class DataError(ValueError):
    """Bad robot data; the message names the source, the field and what was expected."""


class ConfigError(ValueError):
    """A bad override: unknown key or a value of the wrong type."""


class CheckpointError(ValueError):
    """A checkpoint, loss or state file that cannot be used; the message names the file and the fault."""


class RunDirectoryError(FileExistsError):
    """A run directory cannot be used as asked (it holds another run, or is not fastadapt's)."""


# the errors a user can cause; each ends a command with one line on stderr and exit status 2
USER_ERRORS = (DataError, ConfigError, CheckpointError, RunDirectoryError, ValueError, FloatingPointError, OSError)


def describe(error: BaseException) -> str:
    """One line naming what was wrong."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.strerror}: {error.filename}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())
