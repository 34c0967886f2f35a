"""Error kinds the runner reports in one line, each with its own exit code (README, "Errors and exit codes").

  exit 1  internal     a bug or an unexpected failure (a traceback is printed above the line)
  exit 2  config       an unknown key or option, a value of the wrong type or out of range
  exit 3  requeue      preempted by SIGTERM/SIGUSR1 after writing a checkpoint (experiments.preemption)
  exit 4  input        a data file, trace or optional dependency the run reads is missing or unreadable
  exit 5  run folder   the output folder is unwritable, locked by another run, holds another config's run, or
                       holds a corrupt state file (checkpoint, result.json)

Exceptions are classified by type through `KINDS` (first match wins), so a library's own exception (the schemas'
`ConfigError`) keeps its class and still gets its code.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass

from experiments.preemption import REQUEUE_EXIT_CODE
from experiments.schema import ConfigError
from lth.image_folder import CorruptImageError


class InputError(RuntimeError):
    """An input the run reads (data file, folder, optional package) is missing or unusable; names it."""


class RunFolderError(RuntimeError):
    """The output folder cannot hold this run: unwritable, locked, another config's run, or a corrupt state file."""


class CorruptFileError(RunFolderError):
    """A file the run wrote earlier (result.json, a checkpoint) cannot be read back."""

    def __init__(self, path, problem: str, remedy: str) -> None:
        super().__init__(f"{path} is unreadable ({problem}); {remedy}")
        self.path = path


@dataclass(frozen=True)
class Kind:
    name: str
    exit_code: int


INTERNAL = Kind("internal error", 1)
CONFIG = Kind("config error", 2)
REQUEUE = Kind("preempted", REQUEUE_EXIT_CODE)
INPUT = Kind("input error", 4)
RUN_FOLDER = Kind("run folder error", 5)

KINDS: tuple[tuple[type[BaseException], Kind], ...] = (
    (ConfigError, CONFIG),
    (InputError, INPUT),
    (CorruptImageError, INPUT),  # the research package's own "this input file is unusable" (names the file)
    (RunFolderError, RUN_FOLDER),
)

EXIT_CODES = {kind.name: kind.exit_code for kind in (INTERNAL, CONFIG, REQUEUE, INPUT, RUN_FOLDER)}
assert len(set(EXIT_CODES.values())) == len(EXIT_CODES), "every error kind needs its own exit code"


def kind_of(error: BaseException) -> Kind | None:
    """The kind of a reported error, or None for an unexpected one (internal)."""
    for cls, kind in KINDS:
        if isinstance(error, cls):
            return kind
    return None


def from_output_folder(error: BaseException) -> RunFolderError | None:
    """A RunFolderError for an OSError raised while Hydra creates the output folder (`hydra.run.dir=/proc/x`:
    Hydra's own `mkdir`, before any task code runs), or None for any other error."""
    if not isinstance(error, OSError):
        return None
    frames = traceback.extract_tb(error.__traceback__)
    in_hydra = any(f"{os.sep}hydra{os.sep}" in frame.filename for frame in frames)
    if not (frames and frames[-1].name == "mkdir" and in_hydra):
        return None
    return RunFolderError(f"cannot create the output folder {error.filename} ({error.strerror}); choose a writable "
                          "hydra.run.dir (hydra.sweep.dir for a multirun)")


def report(error: BaseException) -> int:
    """Print `<kind>: <message>` as the last line on stderr; returns the exit code of the error's kind."""
    kind = kind_of(error) or INTERNAL
    message = " ".join(str(error).split())  # one line, whatever the message held
    print(f"{kind.name}: {message}", file=sys.stderr)
    return kind.exit_code
