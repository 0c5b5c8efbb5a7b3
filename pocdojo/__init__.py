"""PoC Dojo: multi-tenant PoC registry, search and live dojos."""
