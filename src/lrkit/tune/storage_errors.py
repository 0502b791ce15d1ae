"""How a storage shows in messages: passwords replaced by ``***`` and the database going away
as one line.

:class:`StorageError` is every storage failure lrkit reports; :func:`redact` scrubs a text of
URL passwords, ``password=...`` pairs and the passwords of storages opened here; :func:`where`
names a storage (redacted); :func:`database_errors` turns the database (or gRPC proxy) going
away into one line. :mod:`lrkit.tune.storage` opens the storages and re-exports these names.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from typing import Any

import optuna

from lrkit.errors import UserError


class StorageError(UserError):
    """A storage that cannot be opened or used: a malformed or unreachable URL, a missing
    driver, a database that went away. The message never holds a password."""


# --- redaction ---------------------------------------------------------------------------------

_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>[^\s'\"<>]*)")
_KEYWORD = re.compile(r"(?i)(password\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s&;,)]+)")
_secrets: set[str] = set()  # passwords of the URLs opened here, scrubbed wherever they appear


def redact(text: str) -> str:
    """``text`` with every URL's password (``scheme://user:PASSWORD@host``), every
    ``password=...`` pair and every password lrkit has opened a storage with replaced by ``***``.

    >>> redact("cannot reach postgresql://lrkit:s3cret@10.0.0.5:5432/studies")
    'cannot reach postgresql://lrkit:***@10.0.0.5:5432/studies'
    """
    text = _URL.sub(_redact_url, str(text))
    text = _KEYWORD.sub(lambda m: m.group(1) + "***", text)
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _redact_url(match: re.Match) -> str:
    rest = match.group("rest")
    at = rest.rfind("@")  # userinfo ends at the last '@': over-redacting is safe
    if at < 0 or ":" not in rest[:at]:
        return match.group(0)
    user = rest[: rest.index(":")]
    return f"{match.group('scheme')}{user}:***{rest[at:]}"


def _remember_secret(password: str | None, raw: str | None) -> None:
    for secret in (password, raw):
        if secret and len(secret) >= 3 and secret != "***":
            _secrets.add(secret)


def _first_line(error: BaseException) -> str:
    """The database driver's own first line of ``error`` (SQLAlchemy adds the SQL and a link)."""
    inner = error
    for _ in range(8):  # down to the driver's own error
        deeper = getattr(inner, "orig", None) or inner.__cause__
        if deeper is None:
            break
        inner = deeper
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return redact(lines[0] if lines else type(inner).__name__)


# --- names in messages -------------------------------------------------------------------------

_where: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def where(storage: Any) -> str:
    """A storage's URL or path for messages, its password redacted."""
    known = None
    # the storage opened, or the one behind Optuna's cache (a journal's _backend is its file)
    for candidate in (storage, getattr(storage, "_backend", None)):
        try:
            known = known or _where.get(candidate)
        except TypeError:
            pass
    storage = getattr(storage, "_backend", storage)
    return known or redact(getattr(storage, "url", None) or type(storage).__name__)


# --- the database going away -------------------------------------------------------------------


@contextlib.contextmanager
def database_errors(storage: Any, doing: str = "using the study"):
    """Turn the database (or gRPC proxy) going away into one :class:`StorageError` line that
    names the storage (redacted) and says that the study resumes when it is back. An error
    whose chain holds a database error counts (Optuna may raise another while handling one)."""
    try:
        yield
    except StorageError:
        raise
    except Exception as error:
        cause = _database_cause(error)
        if cause is None:
            raise
        what = "gRPC storage proxy" if _is_grpc(cause) else "database"
        reason = redact(str(cause.code())) if _is_grpc(cause) else _first_line(cause)
        raise StorageError(
            f"lost the {what} {where(storage)!r} while {doing}: {reason}; the study is kept "
            "there: run the same command again when the server is back to resume"
        ) from None


def _is_grpc(error: BaseException) -> bool:
    return type(error).__module__.startswith("grpc") and hasattr(error, "code")


def _database_cause(error: BaseException) -> BaseException | None:
    """The database (or gRPC) error in ``error``'s chain of causes, or None."""
    import sqlalchemy.exc

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (sqlalchemy.exc.DBAPIError, optuna.exceptions.StorageInternalError)):
            return error
        if _is_grpc(error):
            return error
        error = error.__cause__ or error.__context__
    return None
