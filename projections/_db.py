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
    except DBAPIError as exc:
        raise DatabaseError(operation, str(exc.orig)) from exc
    except OSError as exc:
        raise DatabaseError(operation, str(exc) or type(exc).__name__) from exc
