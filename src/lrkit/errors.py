"""Errors that are the user's to fix, as opposed to bugs in lrkit.

The command line prints a :class:`UserError` as one line, ``lrkit: error: ...``, and exits with
status 2; any other exception is an internal error (status 1, with its traceback).
"""

from __future__ import annotations


class UserError(ValueError):
    """A bad value given by the user: the message names it and says what would be accepted.

    It is a ``ValueError`` so that library callers can catch it as one.

    >>> raise UserError("unknown task 'digit-mlp'; known: digits-cnn, digits-mlp")
    Traceback (most recent call last):
    ...
    lrkit.errors.UserError: unknown task 'digit-mlp'; known: digits-cnn, digits-mlp
    """


__all__ = ["UserError"]
