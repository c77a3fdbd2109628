"""``manage.py runserver`` for projects with ``"achannels"`` in ``INSTALLED_APPS``.

The command lives in :mod:`achannels.django.management.commands.runserver`.
"""

from __future__ import annotations

from achannels.django.management.commands.runserver import Command

__all__ = ["Command"]
