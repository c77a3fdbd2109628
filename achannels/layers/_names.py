"""Channel, group and message validation for channel layers (sans-IO).

The rules are the ones Channels 4.3 applies, so a name valid there is valid here:

* a name is a ``str`` shorter than :data:`MAX_NAME_LENGTH` (at most 99 characters);
* a channel name is ASCII letters, digits, ``-``, ``_`` and ``.``, optionally followed
  by ``!`` and a process-local part (:data:`CHANNEL_NAME_REGEX`);
* a group name is the same without the ``!`` part (:data:`GROUP_NAME_REGEX`);
* a name handed to ``receive()`` of a layer that routes process-local channels through
  one shared channel (Redis) must end at the ``!``; layers that receive on full
  process-local names (the memory layer) validate with ``receive=False``.

A bad name raises :class:`TypeError` with Channels' message
(:data:`INVALID_NAME_ERROR`, which is ``BaseChannelLayer.invalid_name_error``), so
``except TypeError`` and tests that match Channels' message keep working; the
offending name is attached as a note (shown in tracebacks). One deliberate
difference: the whole name must match, so a trailing newline (which Channels' ``$``
lets through) is rejected.

Messages must be ``dict`` instances with a ``str`` ``"type"``; anything else raises
:class:`TypeError`. The key ``"__asgi_channel__"`` is reserved (:class:`ValueError`).
"""

from __future__ import annotations

import re
from typing import Any, Final, TypeGuard

__all__ = [
    "CHANNEL_NAME_REGEX",
    "GROUP_NAME_REGEX",
    "INVALID_NAME_ERROR",
    "MAX_NAME_LENGTH",
    "is_valid_channel_name",
    "is_valid_group_name",
    "match_type_and_length",
    "non_local_name",
    "require_valid_channel_name",
    "require_valid_group_name",
    "require_valid_message",
]

#: Names must be strictly shorter than this (Channels' ``MAX_NAME_LENGTH``).
MAX_NAME_LENGTH: Final = 100

#: The same pattern Channels uses for channel names.
CHANNEL_NAME_REGEX: Final = re.compile(r"^[a-zA-Z\d\-_.]+(\![\d\w\-_.]*)?$")
#: The same pattern Channels uses for group names.
GROUP_NAME_REGEX: Final = re.compile(r"^[a-zA-Z\d\-_.]+$")

#: Channels' message for a bad name; ``{}`` is ``"Channel"`` or ``"Group"``.
INVALID_NAME_ERROR: Final = (
    f"{{}} name must be a valid unicode string with length < {MAX_NAME_LENGTH} "
    "containing only ASCII alphanumerics, hyphens, underscores, or periods."
)
_RESERVED_KEY: Final = "__asgi_channel__"


def match_type_and_length(name: object) -> TypeGuard[str]:
    """Return whether ``name`` is a ``str`` shorter than :data:`MAX_NAME_LENGTH`."""
    return isinstance(name, str) and len(name) < MAX_NAME_LENGTH


def is_valid_channel_name(name: object, *, receive: bool = False) -> TypeGuard[str]:
    """Return whether ``name`` is a valid channel name (see :func:`require_valid_channel_name`)."""
    if not match_type_and_length(name) or CHANNEL_NAME_REGEX.fullmatch(name) is None:
        return False
    return not (receive and "!" in name and not name.endswith("!"))


def is_valid_group_name(name: object) -> TypeGuard[str]:
    """Return whether ``name`` is a valid group name (see :func:`require_valid_group_name`)."""
    return match_type_and_length(name) and GROUP_NAME_REGEX.fullmatch(name) is not None


def require_valid_channel_name(name: object, *, receive: bool = False) -> str:
    """Check a channel name and return it.

    Args:
        name: the candidate name.
        receive: apply the ``receive()`` rule of layers that route process-local
            channels through a shared channel: a name containing ``!`` must end there.

    Returns:
        ``name``, typed as ``str``.

    Raises:
        TypeError: ``name`` is not a ``str``, is 100 characters or longer, contains a
            character outside the allowed set, or breaks the ``receive`` rule.
    """
    if not match_type_and_length(name) or CHANNEL_NAME_REGEX.fullmatch(name) is None:
        raise _invalid_name("Channel", name)
    if receive and "!" in name and not name.endswith("!"):
        raise TypeError("Specific channel names in receive() must end at the !")
    return name


def require_valid_group_name(name: object) -> str:
    """Check a group name and return it.

    Raises:
        TypeError: ``name`` is not a ``str``, is 100 characters or longer, or contains a
            character outside the allowed set (``!`` is not allowed in group names).
    """
    if not is_valid_group_name(name):
        raise _invalid_name("Group", name)
    return name


def _invalid_name(kind: str, name: object) -> TypeError:
    """Channels' error for a bad ``kind`` name, with the name in a note."""
    error = TypeError(INVALID_NAME_ERROR.format(kind))
    error.add_note(f"{kind.lower()} name: {name!r}")
    return error


def require_valid_message(message: object) -> dict[str, Any]:
    """Check that a layer message is a ``dict`` with a ``str`` ``"type"`` and return it.

    Raises:
        TypeError: ``message`` is not a ``dict``, or its ``"type"`` is missing or not a
            ``str``.
        ValueError: ``message`` uses the reserved key ``"__asgi_channel__"``.
    """
    if not isinstance(message, dict):
        raise TypeError(f"A layer message must be a dict, not {type(message).__name__}.")
    if not isinstance(message.get("type"), str):
        raise TypeError("A layer message must have a 'type' key whose value is a str.")
    if _RESERVED_KEY in message:
        raise ValueError(f"The key {_RESERVED_KEY!r} is reserved in layer messages.")
    return message


def non_local_name(name: str) -> str:
    """Return the part of a channel name up to and including ``!``, or the whole name."""
    bang = name.find("!")
    return name if bang < 0 else name[: bang + 1]
