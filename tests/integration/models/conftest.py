"""Fixtures for model integration tests (reuse the unit tests' tiny model registry)."""

from tests.unit.models.conftest import tiny_registry  # noqa: F401
