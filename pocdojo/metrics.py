"""The catalog of PoC Dojo's service metrics (Prometheus, ``prometheus_client``).

Every metric a service exports is declared here once, and the alerts
(``cluster/observability/alerts.yaml``) and dashboards (``cluster/observability/dashboards``)
use only these names or Ray's own (a test under ``cluster/tests`` checks it). Services import
the objects from here and update them; the request metrics of the HTTP middleware live in
``pocdojo.api.metrics`` and are re-exported, not redeclared.

Conventions (https://prometheus.io/docs/practices/naming/): the ``pocdojo_`` prefix, base
units (seconds, bytes, ratios 0-1), ``_total`` for counters, a unit suffix for everything
measured, and labels with bounded values only (never a tenant, dojo or user id).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from pocdojo.api.metrics import LATENCY as HTTP_REQUEST_DURATION
from pocdojo.api.metrics import REQUESTS as HTTP_REQUESTS

__all__ = [
    "DB_POOL_CONNECTIONS",
    "DB_POOL_MAX_CONNECTIONS",
    "DOJOS_LIVE",
    "DOJO_ACTOR_RESTARTS",
    "DOJO_CLIENTS_CONNECTED",
    "DOJO_UPDATES",
    "DOJO_UPDATE_LOG_BACKLOG",
    "DOJO_UPDATE_LOG_FLUSH_DURATION",
    "DOJO_UPDATE_LOG_OLDEST_UNFLUSHED_AGE",
    "EVENT_LOOP_LAG",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "OUTBOX_BACKLOG",
    "RENDER_JOBS",
    "RENDER_JOB_DURATION",
    "RENDER_QUEUE_DEPTH",
    "RENDER_QUEUE_OLDEST_AGE",
    "SEARCH_INDEXER_LAG",
    "SEARCH_INDEXER_PENDING",
    "SEARCH_QUERY_DURATION",
    "VOICE_PACKET_LOSS_RATIO",
    "VOICE_PARTICIPANTS",
]

_FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_SLOW_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)

# --- dojos (dojo-api gateway and DojoSession actors) ---------------------------------------

DOJOS_LIVE = Gauge(
    "pocdojo_dojos_live",
    "Live dojos: DojoSession actors hosted by this process.",
)
"""Live dojos hosted by this process (one DojoSession actor each); sum over pods for the total."""

DOJO_CLIENTS_CONNECTED = Gauge(
    "pocdojo_dojo_clients_connected",
    "Websocket clients connected to dojos through this gateway replica, by channel.",
    ["channel"],
)
"""Open dojo websockets on this gateway replica; ``channel`` is ``sync`` or ``events``."""

DOJO_UPDATES = Counter(
    "pocdojo_dojo_updates_total",
    "Yjs updates received by dojo sessions, by outcome (applied or rejected).",
    ["outcome"],
)
"""Document updates a session received; ``outcome`` is ``applied`` or ``rejected``."""

DOJO_UPDATE_LOG_BACKLOG = Gauge(
    "pocdojo_dojo_update_log_backlog_updates",
    "Accepted dojo updates not yet written to the durable update log.",
)
"""Updates accepted in memory and waiting for the group-commit flusher (grows when the
database is slow or down; the session keeps them and retries)."""

DOJO_UPDATE_LOG_OLDEST_UNFLUSHED_AGE = Gauge(
    "pocdojo_dojo_update_log_oldest_unflushed_age_seconds",
    "Age of the oldest accepted dojo update not yet in the durable update log.",
)
"""Seconds since the oldest unflushed update was accepted; 0 when the backlog is empty.
This is the update-log lag the alerts watch: edits older than it are at risk on a crash."""

DOJO_UPDATE_LOG_FLUSH_DURATION = Histogram(
    "pocdojo_dojo_update_log_flush_duration_seconds",
    "Duration of one group-commit flush of the dojo update log.",
    buckets=_FAST_BUCKETS,
)
"""Time one group commit of buffered updates to ``dojo_updates`` takes."""

EVENT_LOOP_LAG = Histogram(
    "pocdojo_event_loop_lag_seconds",
    "How late a periodic timer of the process's event loop fired (sampled every 0.1 s).",
    ["service"],
    buckets=_FAST_BUCKETS,
)
"""Time the event loop could not run anything: a callback that holds it (a long parse, a
big encode), the GIL held by another thread, or the process waiting for a core. On the dojo
gateway every socket of the process waits that long, so edits arrive that much later."""

DOJO_ACTOR_RESTARTS = Counter(
    "pocdojo_dojo_actor_restarts_total",
    "DojoSession actors rebuilt from snapshot and log after a restart.",
)
"""Counts DojoSession actors that started as a restart (state rebuilt from storage)."""

# --- events and search ---------------------------------------------------------------------

OUTBOX_BACKLOG = Gauge(
    "pocdojo_outbox_backlog_events",
    "Committed outbox rows not yet relayed to the Redis event stream.",
)
"""Outbox rows waiting for the relay, counted from the table by every relay (every 2 s):
all relays report the same number, so aggregate with ``max``."""

SEARCH_INDEXER_LAG = Gauge(
    "pocdojo_search_indexer_lag_seconds",
    "Age of the oldest event in the search indexer's stream not yet indexed.",
)
"""Seconds between an event entering the stream and the indexer applying it (oldest pending)."""

SEARCH_INDEXER_PENDING = Gauge(
    "pocdojo_search_indexer_pending_events",
    "Events delivered to the search indexer's consumer group and not yet acknowledged.",
)
"""Pending entries of the ``search-indexer`` consumer group (``XPENDING``), measured by every
indexer process (every 2 s): the same number everywhere, so aggregate with ``max``."""

SEARCH_QUERY_DURATION = Histogram(
    "pocdojo_search_query_duration_seconds",
    "Search backend query latency by kind (search, suggest) and backend.",
    ["kind", "backend"],
    buckets=_FAST_BUCKETS,
)
"""Latency of one query against the SearchIndex backend (``postgres`` or ``opensearch``)."""

# --- renders and exports (jobs table -> Ray tasks) -------------------------------------------

RENDER_QUEUE_DEPTH = Gauge(
    "pocdojo_render_queue_depth_jobs",
    "Jobs queued and not yet started, by kind (video, export).",
    ["kind"],
)
"""Queued jobs per kind (``video`` renders, ``export`` files) over every tenant, from the jobs
tables at each video runner scan and export sweep (`pocdojo.observability.jobs`): every
replica reports the same truth, so aggregate with ``max``."""

RENDER_QUEUE_OLDEST_AGE = Gauge(
    "pocdojo_render_queue_oldest_age_seconds",
    "Age of the oldest queued job, by kind (video, export).",
    ["kind"],
)
"""Seconds the oldest queued job of a kind has waited; the render queue alert watches it."""

RENDER_JOBS = Counter(
    "pocdojo_render_jobs_total",
    "Finished render and export jobs by kind and outcome (succeeded, failed, retried).",
    ["kind", "outcome"],
)
"""Jobs that finished an attempt, by ``kind`` and ``outcome`` (``succeeded``; ``retried``: the
job runs again; ``failed``: for good). Video attempts are counted by the runner, export
attempts by the export task's process."""

RENDER_JOB_DURATION = Histogram(
    "pocdojo_render_job_duration_seconds",
    "Run time of one render or export job attempt, by kind.",
    ["kind"],
    buckets=_SLOW_BUCKETS,
)
"""Wall time of one job attempt."""

# --- voice ---------------------------------------------------------------------------------

VOICE_PARTICIPANTS = Gauge(
    "pocdojo_voice_participants",
    "Participants in voice calls hosted by this process.",
)
"""Peers connected to the VoiceRoom actors of this process."""

VOICE_PACKET_LOSS_RATIO = Histogram(
    "pocdojo_voice_packet_loss_ratio",
    "Fraction of RTP packets lost per participant and reporting interval (0-1).",
    buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1),
)
"""Packet loss per participant from RTCP reports, observed once per reporting interval."""

# --- database ------------------------------------------------------------------------------

DB_POOL_CONNECTIONS = Gauge(
    "pocdojo_db_pool_connections",
    "Connections of this process's database pool, by state (in_use, idle).",
    ["state"],
)
"""Pool connections by ``state``; compare ``in_use`` with the pool's maximum."""

DB_POOL_MAX_CONNECTIONS = Gauge(
    "pocdojo_db_pool_max_connections",
    "Configured maximum size of this process's database pool.",
)
"""``POCDOJO_DB_POOL_MAX`` as seen by this process."""
