"""Starlette apps, one module per service, plus the Ray Serve deployment graph."""
