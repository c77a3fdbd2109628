"""Tests of the Django integration against ``examples/django_project``."""
