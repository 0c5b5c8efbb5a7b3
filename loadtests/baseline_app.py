"""The benchmark baseline: the same Starlette apps as Ray Serve runs, for plain uvicorn.

    .venv/bin/python -m uvicorn --factory loadtests.baseline_app:create \
        --host 127.0.0.1 --port 8100 --no-access-log

Run from the repository root so ``./var/dev-issuer-key.pem`` is the key Serve's issuer
uses; ``loadtests.bench_api`` sets ``POCDOJO_OIDC_JWKS_URL`` to this process's own
``/auth/jwks.json`` and keeps the issuer ``http://127.0.0.1:8000/auth``, so one token
verifies on both sides.
"""

from __future__ import annotations

from starlette.applications import Starlette

from pocdojo.api.poc_app import create_local_app
from pocdojo.settings import get_settings


def create() -> Starlette:
    return create_local_app(get_settings())
