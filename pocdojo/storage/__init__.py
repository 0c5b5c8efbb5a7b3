"""Adapters to the outside world: Postgres, Redis, blob stores, search indexes."""
