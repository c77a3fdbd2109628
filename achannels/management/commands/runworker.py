"""``manage.py runworker`` for projects with ``"achannels"`` in ``INSTALLED_APPS``.

The command lives in :mod:`achannels.django.management.commands.runworker`.
"""

from __future__ import annotations

from achannels.django.management.commands.runworker import Command

__all__ = ["Command"]
