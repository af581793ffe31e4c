"""User-facing errors and the one place scripts turn them into a one-line message."""
import re
import sys
from typing import Callable


class InputError(ValueError):
    """Bad user input (a flag, a file, a checkpoint): the message names it and says how to fix it."""


class TrainingError(RuntimeError):
    """A run that cannot go on (e.g. non-finite losses step after step): the message names the step, the likely
    causes and what was kept."""


def one_line(err: BaseException) -> str:
    """The error's message on one line.

    DataLoader workers re-raise an error as a multi-line "Caught X in DataLoader worker process N." plus the
    worker's traceback, ending in "<module.X>: message": keep only that original message.
    """
    text = str(err).strip()
    if "\n" in text:
        last = text.splitlines()[-1]
        text = re.sub(r"^[\w.]+: ", "", last)
    return text


def run_cli(main: Callable[[], object]) -> None:
    """Every script's entry point: ``main()`` parses, builds and calls the library. Bad input (InputError,
    FileNotFoundError) prints one line and exits 2; a run that cannot go on (TrainingError) exits 1; Ctrl-C 130;
    an int returned by ``main`` is the exit code."""
    try:
        code = main()
    except (InputError, FileNotFoundError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    except TrainingError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)
