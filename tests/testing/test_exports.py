"""``achannels.testing`` exports exactly its public names."""

from __future__ import annotations

import achannels.testing


def test_all_lists_the_public_names_sorted() -> None:
    public = {name for name in vars(achannels.testing) if not name.startswith("_")}
    public -= {"annotations"}
    assert achannels.testing.__all__ == sorted(public)
    assert achannels.testing.__all__ == [
        "ApplicationCommunicator",
        "HttpCommunicator",
        "WebsocketCommunicator",
    ]
