"""OIDC token verification, the local dev issuer, roles and the tenant context."""
