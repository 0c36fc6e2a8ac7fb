"""Domain errors: plain exceptions, translated to canonical codes and statuses in one table
(gateway/pipeline/outcome.py).

Each carries a `reason`, a short stable code for the audit trail. The message a client sees is
fixed per class so that it can never carry an oracle (which credential was wrong, whether a
number exists).
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the rules raise on purpose."""

    reason = "error"

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or self.reason)
        if reason:
            self.reason = reason


class InvalidArgument(DomainError):
    """The request breaks the API's rules; `violations` maps field paths to what is wrong."""

    reason = "invalid_argument"

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        super().__init__()
        self.violations = violations


class Unauthenticated(DomainError):
    """Bad, expired or unknown credentials. Never says which one."""

    reason = "bad_credentials"


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""

    reason = "permission_denied"


class FailedPrecondition(DomainError):
    """The call is valid but the system is not in a state that allows it (e.g. password expired)."""

    reason = "failed_precondition"


class NotFound(DomainError):
    """The named object does not exist (never used where existence would be an oracle)."""

    reason = "not_found"


class Unimplemented(DomainError):
    """No such method."""

    reason = "unknown_method"


class TooManyRequests(DomainError):
    """Throttled or locked; `retry_after` is in seconds."""

    reason = "throttled"

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class DependencyUnavailable(DomainError):
    """Redis, billing, SMS or the audit log cannot answer: fail closed."""

    reason = "dependency_unavailable"

    def __init__(self, dependency: str) -> None:
        super().__init__(f"{dependency}_unavailable")
        self.dependency = dependency


class Interrupted(DependencyUnavailable):
    """A stream stopped part-way after records had left (a dependency, the audit trail or an
    internal fault): the caller holds an incomplete list and must not be told nothing was released."""

    def __init__(self, cause: str, released: int) -> None:
        super().__init__(cause)
        self.reason = f"interrupted_{cause}"
        self.released = released
