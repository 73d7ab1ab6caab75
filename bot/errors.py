"""The error tree. Known errors carry a message fit to show a user; anything else is a bug.

CountersignError
├── ConfigError            settings or policy cannot be used; start-up stops with one line
├── DatabaseUnavailable    the database did not answer; webhooks get 503 so the sender retries
├── NotFound               a call or request does not exist
├── AlreadyDecided         a click lost the compare-and-set; says who decided
├── NotAuthorized          the clicker may not take this action; says why
└── WriteFailed            a decision write failed; carries whether it may be retried
"""

from __future__ import annotations


class CountersignError(Exception):
    """Base of every error Countersign raises on purpose."""

    user_message: str = "Something went wrong."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.user_message)
        if message:
            self.user_message = message


class ConfigError(CountersignError):
    """Settings or policy are unusable."""


class DatabaseUnavailable(CountersignError):
    """The database did not answer."""

    user_message = "The database is not answering; try again shortly."


class NotFound(CountersignError):
    """The thing asked for does not exist."""

    user_message = "Not found."


class AlreadyDecided(CountersignError):
    """Someone else decided first."""


class NotAuthorized(CountersignError):
    """The user may not do this."""

    user_message = "You are not allowed to do that."


class BadInput(CountersignError):
    """The click or form cannot be acted on as given; the message says what to change."""


class WriteFailed(CountersignError):
    """A decision write failed."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
