"""``manage.py createdemousers [NAME ...] [--password PASSWORD]``: users to try the chat with.

Creates ``alice``, ``bob`` and ``carol`` (or the names given) with one known
password, so that several browser windows can log in as different people. Users
that already exist are left as they are. A known password is for a development
database only: the command refuses to run with ``DEBUG`` off.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

#: The users made when no name is given.
DEMO_USERS = ("alice", "bob", "carol")
#: Their password, unless ``--password`` is given.
DEMO_PASSWORD = "achannels-demo"


class Command(BaseCommand):  # type: ignore[misc]  # Django has no type stubs here
    help = (
        "Create demo users (alice, bob and carol unless names are given) with one "
        f"password ({DEMO_PASSWORD!r} unless --password is given). DEBUG only."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("usernames", nargs="*", metavar="NAME", help="the users to create")
        parser.add_argument("--password", default=DEMO_PASSWORD, help="their password")

    def handle(self, *args: Any, usernames: list[str], password: str, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "createdemousers makes users with a known password: it runs with DEBUG on "
                "only (use createsuperuser on other databases)"
            )
        users = get_user_model()
        created = []
        for username in usernames or DEMO_USERS:
            if not users.objects.filter(username=username).exists():
                users.objects.create_user(username, password=password)
                created.append(username)
            elif options["verbosity"] > 0:
                self.stdout.write(f"{username} exists already: left unchanged")
        if created and options["verbosity"] > 0:
            self.stdout.write(
                self.style.SUCCESS(f"Created {', '.join(created)} with the password {password!r}")
            )
