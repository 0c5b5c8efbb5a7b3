"""Dojo tests use the suite-wide `ray_cluster` fixture from tests/conftest.py."""
