"""Access-log redaction: query-string values of credential-like parameters never hit the log.

keyscope takes tokens and keys only in headers, but clients still send `?access_token=…` (and
`?key=…`, Google's old style). uvicorn's access log writes the full request target; this filter
rewrites those values to `[redacted]` on the `uvicorn.access` logger, whichever formatter or
handler is configured for it.
"""

import logging
import re

SENSITIVE_PARAMS = (
    "access_token",
    "id_token",
    "refresh_token",
    "token",
    "api_key",
    "apikey",
    "key",
)
_PARAM = re.compile(
    r"(?i)([?&](?:" + "|".join(SENSITIVE_PARAMS) + r")=)[^&#\s]*",
)


def redact_query(target: str) -> str:
    """`target` (path and query) with sensitive parameter values replaced."""
    return _PARAM.sub(r"\1[redacted]", target) if "?" in target else target


class QueryRedactionFilter(logging.Filter):
    """Rewrites string arguments of access-log records (uvicorn passes the target as one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        return True


def install_access_log_redaction(logger_name: str = "uvicorn.access") -> None:
    """Idempotent: one filter per logger."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, QueryRedactionFilter) for f in logger.filters):
        logger.addFilter(QueryRedactionFilter())
