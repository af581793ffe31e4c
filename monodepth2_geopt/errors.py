"""User-facing errors and the one place scripts turn them into a one-line message."""
import sys
from typing import Callable


class InputError(ValueError):
    """Bad user input (a flag, a file, a checkpoint): the message names it and says how to fix it."""


def run_cli(main: Callable[[], object]) -> None:
    """Run a script's ``main`` and print bad-input errors as one line (exit code 2), not a stack trace."""
    try:
        main()
    except (InputError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
