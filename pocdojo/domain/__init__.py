"""Pure domain logic: language catalogue, seed corpus, ..."""
