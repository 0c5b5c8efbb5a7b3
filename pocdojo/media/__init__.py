"""media package (see ARCHITECTURE.md)."""
