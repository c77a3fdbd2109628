"""A small Django project on achannels: a chat, an ORM-backed consumer and a worker.

Run it from the repository root::

    python examples/django_project/manage.py migrate
    hypercorn -k trio examples.django_project.asgi:application
    # or: python -m achannels serve examples.django_project.asgi:application

and, for the background worker (useful with a layer shared between processes)::

    python examples/django_project/manage.py runworker archive --backend trio

``ACHANNELS_EXAMPLE_DB=postgres`` switches the database from SQLite to PostgreSQL on
127.0.0.1:5432 (see ``settings.py``).
"""
