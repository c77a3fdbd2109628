"""``achannels.testing`` exports exactly its public names."""

from __future__ import annotations

from types import ModuleType

import achannels.testing


def test_all_lists_the_public_names_sorted() -> None:
    public = {
        name
        for name in dir(achannels.testing)
        # "@py_builtins"...: pytest rewrites the asserts of packages that ship a plugin.
        if not name.startswith(("_", "@"))
        and not isinstance(getattr(achannels.testing, name), ModuleType)
    }
    public -= {"annotations"}
    assert achannels.testing.__all__ == sorted(public)
    assert achannels.testing.__all__ == [
        "ApplicationCommunicator",
        "ChannelsLiveServerTestCase",
        "CommunicatorHost",
        "HttpCommunicator",
        "WebsocketCommunicator",
        "open_communicator_host",
    ]
