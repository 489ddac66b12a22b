"""agwm's errors. Each is one line for the user: the option as it was written, its value and what
is allowed (:class:`ConfigError`), or the data folder, file or row and what is wrong with it
(:class:`DataError`). The Betty problems (``agwm_problems``) have an error class of their own;
:func:`from_problems` gives theirs as agwm's where agwm calls them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def first_line(error: BaseException, empty: str | None = None) -> str:
    """The first line of ``error``'s message, for a one-line refusal; ``empty`` (default: the
    error's class name) when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__ if empty is None else empty


class ConfigError(ValueError):
    """A setting, flag or file named by one that agwm refuses, before any work."""


class DataError(ValueError):
    """A data folder, file or row that cannot be used; the message names it."""


@contextmanager
def from_problems() -> Iterator[None]:
    """Inside the block, agwm_problems' ConfigError (a ``key=value`` or engine setting refused) is raised as agwm's."""
    from agwm_problems.overrides import ConfigError as ProblemsConfigError

    try:
        yield
    except ProblemsConfigError as error:
        raise ConfigError(str(error)) from None
