"""A Django project on achannels: a chat with logins, rooms and history, and a worker.

Run it from the repository root (README.md beside this file says more)::

    python examples/django_project/manage.py migrate
    python examples/django_project/manage.py createdemousers
    hypercorn -k trio examples.django_project.asgi:application
    # or: python -m achannels serve examples.django_project.asgi:application

then log in at http://127.0.0.1:8000/chat/ as alice, bob or carol (password
``achannels-demo``). The background worker (useful with a layer shared between
processes)::

    python examples/django_project/manage.py runworker archive --backend trio

``ACHANNELS_EXAMPLE_DB=postgres`` switches the database from SQLite to PostgreSQL on
127.0.0.1:5432 (see ``settings.py``).
"""
