"""Errors a user can cause, reported as one clear line (what, where, what to do)."""

from __future__ import annotations


class BenchError(Exception):
    """A problem the user can fix. `str()` is the whole message; `hint` says what to do."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}. {self.hint}" if self.hint else self.message


def one_line(exc: BaseException) -> str:
    """The user-facing line for an exception.

    A BenchError raised inside a DataLoader worker comes back re-raised with the worker's
    traceback folded into its message; keep only the original message.
    """
    text = str(exc)
    marker = "BenchError: "
    if "Original Traceback" in text and marker in text:
        text = text.rsplit(marker, 1)[1]
    return " ".join(text.strip().splitlines()) if text.strip() else type(exc).__name__
