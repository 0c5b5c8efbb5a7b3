"""engine package (see ARCHITECTURE.md)."""
