"""Logging set-up: every line passes through the redacting filter."""

from __future__ import annotations

import logging
import sys

from bot.redaction import RedactingFilter


def configure(level: str = "INFO") -> None:
    """Log to stderr, one line per record, redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler is only our ticker; its per-tick lines would drown everything else.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
