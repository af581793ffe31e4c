"""User-facing errors and the one place scripts turn them into a one-line message."""
import contextlib
import os
import re
import sys
import warnings
from typing import Callable, Iterator


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


class Problems:
    """Collects the preconditions of a long job that fail, so that they are reported together, in one message,
    before the work starts (not one per attempt)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.errors: list[Exception | None] = []

    def add(self, message: str, error: Exception | None = None) -> None:
        if message in self.messages:  # e.g. the same missing split folder for train and val
            return
        self.messages.append(message)
        self.errors.append(error)

    @contextlib.contextmanager
    def check(self) -> Iterator[None]:
        """Run a check; an InputError / FileNotFoundError it raises is recorded instead of propagated (the rest of
        the ``with`` block is skipped)."""
        try:
            yield
        except (InputError, FileNotFoundError) as err:
            self.add(one_line(err), err)

    def raise_if_any(self) -> None:
        """Nothing when every check passed; one problem as it was raised; several as one InputError."""
        if len(self.messages) == 1:
            raise self.errors[0] or InputError(self.messages[0])
        if self.messages:
            listed = " ".join(f"({i}) {m.rstrip('.')}." for i, m in enumerate(self.messages, 1))
            raise InputError(f"{len(self.messages)} problems, found before starting: {listed}")


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_python_formatwarning = warnings.formatwarning


def _is_project_file(filename: str) -> bool:
    """A module of this package, or one of the repository's scripts (a warning with ``stacklevel=2`` is attributed
    to the script that called the library)."""
    path = os.path.abspath(filename)
    return path.startswith(_PACKAGE_DIR + os.sep) or (
        os.path.dirname(path) == os.path.dirname(_PACKAGE_DIR) and os.path.isfile(
            os.path.join(os.path.dirname(_PACKAGE_DIR), "pyproject.toml")))


def format_warning(message, category, filename, lineno, line=None) -> str:
    """This project's warnings as one line, ``warning: <message>``, without Python's file, line number and source
    line (meant for developers, noise for a user); other libraries' warnings keep Python's format."""
    if _is_project_file(filename):
        return f"warning: {' '.join(str(message).split())}\n"
    return _python_formatwarning(message, category, filename, lineno, line)


def run_cli(main: Callable[[], object]) -> None:
    """Every script's entry point: ``main()`` parses, builds and calls the library. Bad input (InputError,
    FileNotFoundError) prints one line and exits 2; a run that cannot go on (TrainingError) exits 1; Ctrl-C 130;
    an int returned by ``main`` is the exit code. The project's warnings print as one line (``format_warning``)."""
    warnings.formatwarning = format_warning
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
