"""Where driver errors become our errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError

from .errors import DatabaseError


@contextmanager
def driver_errors(operation: str) -> Iterator[None]:
    """Re-raise driver and connection failures (incl. timeouts) as `DatabaseError(operation, ...)`."""
    try:
        yield
    except (DBAPIError, OSError) as exc:
        raise DatabaseError(operation, reason(exc)) from exc


def reason(exc: BaseException) -> str:
    """Return what went wrong, without the SQL text that `DBAPIError` adds."""
    if isinstance(exc, DBAPIError):
        return str(exc.orig)
    return str(exc) or type(exc).__name__
