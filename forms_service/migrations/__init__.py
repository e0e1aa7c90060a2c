"""Alembic migrations of the service's database (``forms-service db upgrade``)."""
