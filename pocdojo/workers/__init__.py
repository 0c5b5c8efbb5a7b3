"""Long-running workers: the outbox relay and event consumers (search indexer)."""
