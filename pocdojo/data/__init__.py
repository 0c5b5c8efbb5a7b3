"""Bundled static data files (language catalogue, ...)."""
