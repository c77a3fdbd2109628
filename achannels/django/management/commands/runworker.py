"""``manage.py runworker CHANNEL [CHANNEL ...] [--layer ALIAS] [--backend trio|asyncio]``.

As Channels' command: it serves the named layer channels with
``settings.ASGI_APPLICATION`` (usually a ``ProtocolTypeRouter`` whose ``"channel"``
entry is a ``ChannelNameRouter``) through :class:`achannels.worker.Worker`, on the
layer configured as ``--layer`` in ``CHANNEL_LAYERS``. It runs under ``anyio.run``
on ``--backend`` (default asyncio) until SIGINT or SIGTERM, then cancels the worker
and exits with status 0.

A process-local layer (``InMemoryChannelLayer``) only carries messages sent inside
the worker process; to feed a worker from web processes, use a layer shared between
processes.
"""

from __future__ import annotations

import signal
from argparse import ArgumentParser
from typing import Any

import anyio
from django.core.management.base import BaseCommand, CommandError

from achannels.django._application import get_default_application
from achannels.layers import DEFAULT_CHANNEL_LAYER, get_channel_layer
from achannels.worker import Worker

__all__ = ["Command"]


class Command(BaseCommand):  # type: ignore[misc]  # Django has no type stubs here
    """Run a worker for the given layer channels until SIGINT or SIGTERM."""

    help = "Runs a worker that serves the given channel-layer channels with ASGI_APPLICATION."
    leave_locale_alone = True
    worker_class = Worker

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Add the channel names, ``--layer`` and ``--backend``."""
        super().add_arguments(parser)
        parser.add_argument(
            "--layer",
            default=DEFAULT_CHANNEL_LAYER,
            help="Channel layer alias to use, if not the default.",
        )
        parser.add_argument(
            "--backend",
            choices=["asyncio", "trio"],
            default="asyncio",
            help="The AnyIO backend to run the worker on (default: asyncio).",
        )
        parser.add_argument("channels", nargs="+", help="Channels to listen on.")

    def handle(self, *args: Any, **options: Any) -> None:
        """Build the worker and run it until a signal arrives."""
        layer = get_channel_layer(options["layer"])
        if layer is None:
            raise CommandError("You do not have any CHANNEL_LAYERS configured.")
        worker = self.worker_class(
            application=get_default_application(),
            channels=options["channels"],
            channel_layer=layer,
        )
        if options["verbosity"] >= 1:
            self.stdout.write(
                f"Running worker for channels {', '.join(worker.channels)} "
                f"(layer {options['layer']!r}, {options['backend']})"
            )
            self.stdout.flush()
        anyio.run(run_until_signalled, worker, backend=options["backend"])
        if options["verbosity"] >= 1:
            self.stdout.write("Worker stopped")


async def run_until_signalled(worker: Worker) -> None:
    """Run ``worker`` until SIGINT or SIGTERM (or until it returns by itself)."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as task_group:

            async def run_then_stop() -> None:
                await worker.run()
                task_group.cancel_scope.cancel()

            task_group.start_soon(run_then_stop)
            async for _ in signals:
                break
            task_group.cancel_scope.cancel()
