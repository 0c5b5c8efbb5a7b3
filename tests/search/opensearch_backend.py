"""The OpenSearch backend for the search contract tests, when a cluster is configured.

Not a test module: ``make_opensearch_backend`` is awaited by the ``index`` fixture. It needs
``POCDOJO_TEST_OPENSEARCH_URL`` (for example ``https://admin:secret@127.0.0.1:9200``; set
``POCDOJO_TEST_OPENSEARCH_VERIFY_CERTS=0`` for a local cluster's self-signed certificate)
and skips the test otherwise. Each call gets its own alias and index, removed by cleanup.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable

import pytest

from pocdojo.storage.search_opensearch import OpenSearchSearch, open_opensearch

URL_VARIABLE = "POCDOJO_TEST_OPENSEARCH_URL"
SKIP_REASON = (
    "OpenSearch contract tests need POCDOJO_TEST_OPENSEARCH_URL "
    "(no OpenSearch cluster on this machine)"
)


async def make_opensearch_backend() -> tuple[OpenSearchSearch, Callable[[], Awaitable[None]]]:
    """A set-up backend on a fresh alias/index, and the coroutine function that drops
    that index and template and closes the client; skips the test without a cluster."""
    url = os.environ.get(URL_VARIABLE, "").strip()
    if not url:
        pytest.skip(SKIP_REASON)
    verify = os.environ.get("POCDOJO_TEST_OPENSEARCH_VERIFY_CERTS", "1").lower() not in {
        "0",
        "false",
        "no",
    }
    backend = open_opensearch(
        url,
        verify_certs=verify,
        timeout_s=10.0,  # a test cluster on a laptop answers index creation slowly
        alias=f"pocdojo-test-{uuid.uuid4().hex[:12]}",
        shards=1,
        replicas=0,
        refresh=True,  # the contract tests search right after writing
    )
    try:
        await backend.ensure_setup()
    except BaseException:
        await backend.aclose()
        raise

    async def cleanup() -> None:
        try:
            indices = backend.client.indices
            created = await indices.get(index=f"{backend.alias}-*", ignore_unavailable=True)
            if created:
                await indices.delete(index=",".join(sorted(created)))
            await indices.delete_index_template(name=backend.template_name, ignore=[404])
        finally:
            await backend.aclose()

    return backend, cleanup
