"""Alembic environment and versions of the archive schema (shipped as archiver.migrations)."""
