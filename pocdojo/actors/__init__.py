"""actors package (see ARCHITECTURE.md)."""
