"""marginguard's logs: structlog, JSON lines for machines, a readable console for people, secrets never.

    configure_logging(settings.daemon.log_format, settings.daemon.log_level)
    register_secrets(secret_values(settings))
    log = get_logger(__name__)

Every event, from marginguard's own loggers and from the standard-library loggers of ccxt, aiohttp and
asyncio alike, passes `redact_secrets` before it is rendered: values under secret-looking keys, every secret
value registered at start-up with the forms it travels in (daemon.app.redaction), webhook URLs, Telegram bot
tokens and signature / key query parameters are replaced by "***" wherever they appear, including in
exception text. Exceptions are rendered to text before
redaction, so a traceback quoting a request URL or a config value is masked too.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from daemon.app.redaction import MASK, Redactor

# Keys (compared lower-case, without "-" and "_") whose values are always secret: config fields, ccxt
# credentials and the exchanges' auth headers (X-MBX-APIKEY, OK-ACCESS-KEY/-SIGN/-PASSPHRASE, X-BAPI-SIGN).
_SECRET_KEY = re.compile(
    r"secret|passw|passphrase|token|apikey|privatekey|signature|authorization|cookie|credential|hmac"
    r"|listenkey|webhookurl|accesskey|accesssign|bapisign|^sign$"
)
# Names of where a secret comes from (an environment variable, a file path) are not secret themselves.
_SOURCE_KEY_SUFFIXES = ("env", "file")

# The process's one redactor for logs: the secret values known at start-up (from the settings).
_redactor = Redactor()


def register_secrets(values: Iterable[str | None]) -> None:
    """Mask these exact values, and the forms they travel in, wherever they appear in a log event (call once
    the settings are loaded)."""
    _redactor.add(values)


def forget_secrets() -> None:
    """Drop every registered secret (tests; a reload that replaces all credentials)."""
    global _redactor
    _redactor = Redactor()


def redact_text(text: str) -> str:
    return _redactor.text(text)


def is_secret_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    normalized = key.lower().replace("-", "").replace("_", "")
    if normalized.endswith(_SOURCE_KEY_SUFFIXES):
        return False
    return bool(_SECRET_KEY.search(normalized))


def redact_value(value: Any) -> Any:
    """A copy of `value` with every secret masked. Objects of other types become their (redacted) repr."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (MASK if is_secret_key(k) and v is not None else redact_value(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item) for item in value]
    # An exception, a ccxt object, a dataclass: render it here, where it can still be masked.
    return redact_text(str(value) if isinstance(value, BaseException) else repr(value))


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets anywhere in the event (keys by name, known values, URL forms)."""
    redacted: EventDict = {}
    for key, value in event_dict.items():
        if key.startswith("_"):  # structlog's own bookkeeping (the stdlib record), never rendered
            redacted[key] = value
        elif is_secret_key(key) and value is not None:
            redacted[key] = MASK
        else:
            redacted[key] = redact_value(value)
    return redacted


# Render exceptions to text first, so that their messages and tracebacks are redacted like the rest.
REDACTION_PROCESSORS: tuple[Processor, ...] = (structlog.processors.format_exc_info, redact_secrets)

_HANDLER_NAME = "marginguard"


class RedactingBoundLogger(structlog.stdlib.BoundLogger):
    """structlog's stdlib logger, except that `exception()` leaves no raw exception on the LogRecord.

    The stock method calls `logging.Logger.exception`, which attaches `exc_info` to the record, where any
    other handler (a library's, a test runner's) would print the unredacted traceback. Here the traceback
    travels only as the redacted "exception" text.
    """

    def exception(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        kw.setdefault("exc_info", True)
        return self.error(event, *args, **kw)


def wants_json(log_format: str, stream: TextIO) -> bool:
    if log_format == "json":
        return True
    if log_format == "console":
        return False
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(log_format: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Send marginguard's and every library's logs through one redacting structlog pipeline to `stream`.

    `log_format`: "json" (one JSON object per line), "console" (for a person at a terminal) or "auto" (JSON
    unless `stream`, stdout by default, is a terminal). Calling it again replaces the previous set-up.
    """
    stream = sys.stdout if stream is None else stream
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if wants_json(log_format, stream)
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            timestamper,
            structlog.processors.StackInfoRenderer(),
            *REDACTION_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=RedactingBoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        # Records from ccxt, aiohttp, asyncio... get the same fields and the same redaction.
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            timestamper,
            *REDACTION_PROCESSORS,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Python's own last words (an uncaught exception, a warning) would reach stderr unredacted.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, trace)
        return
    get_logger("marginguard").error("uncaught exception", exc_info=(kind, error, trace))


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
