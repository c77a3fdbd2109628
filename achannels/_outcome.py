"""What the client sees when a connection ends: one table for every consumer style.

Sans-IO. :func:`outcome_for` maps the error that ended a consumer (or ``None``) to
the WebSocket close code and reason, the HTTP status and body, and whose fault it
was; the connection objects only carry it out. Function consumers, class consumers
and HTTP views all end through this one function, so a given error closes a socket
or answers a request the same way whichever style raised it.

======================================  =========  ==============  ======  =======
error                                   WS code    WS reason       HTTP    blame
======================================  =========  ==============  ======  =======
none (returned, ``StopConsumer``)       1000       ""              503     none
the client left (``WebSocketDisconnect``,  -       -               -       gone
``RequestAborted``)
``InvalidMessage``                      its code   its text        400     client
``MessageTooLarge``                     1009       its text        413     client
``HTTPException`` 4xx                   1008       its detail      its     client
``HTTPException`` 5xx                   1011       its detail      its     server
anything else                           1011       internal error  500     server
======================================  =========  ==============  ======  =======

HTTP 503 for "none" is what a request that was cut short without a response gets
(a server shutdown). A server error is logged with its traceback and counted; a
client's bad input is one warning line; "gone" sends nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from http import HTTPStatus

from .exceptions import (
    HTTPException,
    InvalidMessage,
    MessageTooLarge,
    RequestAborted,
    StopConsumer,
    WebSocketDisconnect,
)

__all__ = ["MAX_REASON_BYTES", "Blame", "Outcome", "fit_reason", "outcome_for"]

#: What a close frame's 125-byte payload leaves for the reason after the code.
MAX_REASON_BYTES = 123


class Blame(enum.Enum):
    """Why a connection ended, as far as logging and counting are concerned."""

    NONE = "none"  # the consumer finished, or was stopped by the server
    GONE = "gone"  # the client left: nothing more can be sent
    CLIENT = "client"  # the client's bad input: one warning line
    SERVER = "server"  # a server-side error: logged with traceback, counted


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the client is told when a connection ends."""

    blame: Blame
    close_code: int = 1000
    close_reason: str = ""
    status: int = 503
    detail: str = ""


_NORMAL = Outcome(Blame.NONE, detail="The server is shutting down.")
_GONE = Outcome(Blame.GONE)
_INTERNAL = Outcome(Blame.SERVER, 1011, "internal error", 500, "Internal Server Error")


def fit_reason(reason: str) -> str:
    """Cut ``reason`` to at most 123 UTF-8 bytes without splitting a character."""
    encoded = reason.encode("utf-8")
    if len(encoded) <= MAX_REASON_BYTES:
        return reason
    return encoded[:MAX_REASON_BYTES].decode("utf-8", "ignore")


def outcome_for(error: BaseException | None) -> Outcome:
    """Return what the client sees for a consumer that ended with ``error``.

    ``None`` covers a consumer cancelled from outside (plain hypercorn cancels the
    connections it gave up waiting for): a normal close where the transport allows.
    """
    if error is None or isinstance(error, StopConsumer):
        return _NORMAL
    if isinstance(error, (WebSocketDisconnect, RequestAborted)):
        return _GONE
    if isinstance(error, InvalidMessage):
        text = str(error)
        return Outcome(Blame.CLIENT, error.close_code, fit_reason(text), 400, text)
    if isinstance(error, MessageTooLarge):
        return Outcome(Blame.CLIENT, 1009, "message too large", 413, str(error))
    if isinstance(error, HTTPException):
        return _http_outcome(error)
    return _INTERNAL


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _http_outcome(error: HTTPException) -> Outcome:
    status = error.status_code
    detail = error.detail or _phrase(status)
    if status >= 500:
        return Outcome(Blame.SERVER, 1011, fit_reason(detail), status, detail)
    return Outcome(Blame.CLIENT, 1008, fit_reason(detail), status, detail)
