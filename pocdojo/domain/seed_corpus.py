"""Deterministic generator of realistic PoC records, for demo seeding and benchmarks.

Everything is driven by one private ``random.Random(seed)``: the same ``(count,
seed, year_range)`` always yields the same records, and the global ``random``
state is never touched.

Roughly 85% of names are English, ~10% Portuguese (with accents), and the rest
Spanish or German. Descriptions are 1-4 sentences of Markdown, sometimes with a
bullet list. Languages are canonical ids from the bundled catalogue, tags are
slugs drawn from a Zipf-like distribution over a fixed vocabulary.
"""

from __future__ import annotations

import datetime
import functools
import random
import re
import unicodedata
from bisect import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

from pocdojo.domain.languages import catalogue

__all__ = [
    "LANGUAGE_WEIGHTS",
    "MAX_DESCRIPTION_LEN",
    "MAX_NAME_LEN",
    "MAX_TAGS",
    "MAX_TAG_LEN",
    "STATUSES",
    "TAG_VOCABULARY",
    "SeedPoc",
    "generate_pocs",
]

MAX_NAME_LEN = 120
MAX_DESCRIPTION_LEN = 2000
MAX_TAGS = 6
MAX_TAG_LEN = 40
STATUSES: tuple[str, ...] = ("active", "draft", "archived")
REPO_BASE_URL = "https://git.example.test/"


@dataclass(frozen=True, slots=True)
class SeedPoc:
    """One generated proof-of-concept record."""

    name: str
    description: str
    languages: tuple[str, ...]
    tags: tuple[str, ...]
    status: str
    built_on: datetime.date
    repo_url: str | None


# --------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------

_QUALIFIERS: tuple[str, ...] = (
    "Realtime", "Serverless", "Offline-first", "Event-driven", "Distributed",
    "Streaming", "Incremental", "Multi-tenant", "Zero-downtime", "Low-latency",
    "Self-healing", "Edge", "Federated", "Privacy-preserving", "Adaptive",
    "Declarative", "Async", "Batch", "Reactive", "Lightweight", "Cost-aware", "Secure",
    "Resilient", "Schema-first", "Headless", "Embedded", "Cloud-native", "Autoscaling",
    "Geo-distributed", "Idempotent", "End-to-end encrypted", "Observable", "Type-safe",
    "Pluggable", "Vectorised", "Sharded", "Stateless", "Composable", "Hybrid",
    "Local-first", "GPU-accelerated", "Explainable",
)  # fmt: skip

_SUBJECTS: tuple[str, ...] = (
    "fraud scoring", "cache warmer", "image thumbnailer", "billing gateway",
    "sync engine", "feature store", "rate limiter", "search indexer", "log analyser",
    "recommendation engine", "support chatbot", "document parser", "invoice OCR",
    "payment router", "notification fan-out", "job scheduler", "audit trail",
    "config service", "A/B testing platform", "session store", "webhook relay",
    "CDC pipeline", "metrics exporter", "anomaly detector", "price optimiser",
    "geofencing service", "map tile server", "video transcoder", "PDF renderer",
    "email classifier", "access-control layer", "secrets rotator", "data lake ingester",
    "ETL pipeline", "query planner", "graph explorer", "deployment bot",
    "release dashboard", "load tester", "chaos injector", "feature-flag service",
    "semantic search", "RAG assistant", "embeddings service", "speech-to-text pipeline",
    "inventory tracker", "ticket triage", "customer 360 view", "churn predictor",
    "collaborative editor", "shared whiteboard", "QR check-in",
    "IoT telemetry collector", "BLE beacon scanner", "form builder",
    "permissions matrix", "multi-region failover", "blue-green deployer",
    "SBOM scanner", "dependency updater",
)  # fmt: skip

_TECHS: tuple[str, ...] = (
    "Kafka Streams", "Kafka", "Redis", "PostgreSQL", "OpenSearch", "Elasticsearch",
    "DuckDB", "ClickHouse", "gRPC", "GraphQL", "WebSockets", "WebRTC", "WebAssembly",
    "Kubernetes", "AWS Lambda", "Cloudflare Workers", "Deno", "Bun", "FastAPI",
    "Django", "Spring Boot", "Ktor", "SwiftUI", "Jetpack Compose", "Flutter",
    "React Native", "Next.js", "SvelteKit", "Tokio", "Go channels", "NATS", "RabbitMQ",
    "Temporal", "Airflow", "dbt", "Spark", "Flink", "Ray", "PyTorch", "ONNX Runtime",
    "LangChain", "pgvector", "Qdrant", "SQLite", "CRDTs", "Yjs", "OpenTelemetry",
    "Prometheus", "Grafana", "Terraform", "Pulumi", "Istio", "Envoy", "eBPF", "MQTT",
    "S3", "DynamoDB", "BigQuery", "Snowflake", "Supabase", "Firebase", "Stripe",
    "Keycloak", "Vault", "Phoenix LiveView", "Rails", ".NET Aspire", "Blazor",
)  # fmt: skip

_DOMAINS: tuple[str, ...] = (
    "billing", "checkout", "the field app", "logistics", "healthcare",
    "insurance claims", "onboarding", "KYC", "the loyalty program", "the marketplace",
    "ride sharing", "food delivery", "e-commerce", "retail banking", "lending", "HR",
    "payroll", "customer support", "internal tools", "the data science team",
    "retail stores", "warehouses", "smart meters", "agritech", "education",
    "public transport", "events", "ticketing", "hotels", "telecom", "media streaming",
    "mobile gaming", "legal docs", "procurement", "fleet tracking", "clinics",
    "pharmacies", "the energy grid", "sports stats", "real estate",
)  # fmt: skip

_VERBS: tuple[str, ...] = (
    "Migrating", "Benchmarking", "Evaluating", "Prototyping", "Scaling", "Hardening",
    "Instrumenting", "Rewriting", "Sandboxing", "Load-testing",
)  # fmt: skip

_PT_SUBJECTS: tuple[str, ...] = (
    "Integração de pagamentos Pix", "Análise de logs", "Detecção de fraudes",
    "Conciliação bancária", "Emissão de notas fiscais", "Gestão de estoque",
    "Previsão de demanda", "Otimização de rotas", "Autenticação biométrica",
    "Sincronização offline", "Cobrança recorrente", "Classificação de documentos",
    "Extração de dados de boletos", "Recomendação de produtos",
    "Monitoramento de frota", "Geração de relatórios", "Migração de dados legados",
    "Orquestração de contêineres", "Notificações em tempo real", "Busca semântica",
    "Assistente jurídico", "Triagem de chamados", "Validação de CPF e CNPJ",
    "Painel de observabilidade", "Cadastro de clientes", "Agendamento de consultas",
    "Precificação dinâmica", "Transcrição de áudio", "Prevenção à lavagem de dinheiro",
    "Análise de crédito",
)  # fmt: skip

_PT_DOMAINS: tuple[str, ...] = (
    "o varejo", "clínicas", "cooperativas de crédito", "o agronegócio", "escolas",
    "órgãos públicos", "a logística", "seguradoras", "hospitais", "o e-commerce",
    "restaurantes", "condomínios", "farmácias", "transportadoras",
    "a operação de campo",
)  # fmt: skip

_ES_SUBJECTS: tuple[str, ...] = (
    "Conciliación de pagos", "Análisis de sentimiento", "Facturación electrónica",
    "Gestión de inventario", "Predicción de demanda", "Búsqueda semántica",
    "Detección de anomalías", "Optimización de rutas", "Migración a la nube",
    "Autenticación sin contraseña", "Señalización de pedidos", "Catálogo de productos",
)  # fmt: skip

_ES_DOMAINS: tuple[str, ...] = (
    "el comercio minorista", "clínicas", "bancos", "aseguradoras", "logística",
    "la administración pública", "hoteles", "restaurantes",
)  # fmt: skip

_DE_SUBJECTS: tuple[str, ...] = (
    "Echtzeit-Betrugserkennung", "Rechnungsverarbeitung", "Lagerverwaltung",
    "Routenplanung", "Datenschutzkonforme Protokollanalyse", "Störungsmeldungen",
    "Zählerstandserfassung", "Gebührenabrechnung", "Übersetzungsdienst",
    "Bestandsprognose", "Kundenportal", "Schadensmeldung",
)  # fmt: skip

_DE_DOMAINS: tuple[str, ...] = (
    "Stadtwerke", "Versicherungen", "den Einzelhandel", "Krankenhäuser", "Behörden",
    "die Logistik", "Energieversorger",
)  # fmt: skip

_SUFFIXES: tuple[str, ...] = (" v2", " (spike)", " - PoC", " prototype", " MVP", " v3")

#: Tags ordered by (intended) popularity; weights follow 1 / rank**1.07.
TAG_VOCABULARY: tuple[str, ...] = (
    "observability", "kubernetes", "machine-learning", "serverless", "payments", "llm",
    "kafka", "mobile", "api", "data-pipeline", "security", "postgres", "graphql",
    "grpc", "rag", "edge", "offline-first", "event-driven", "search", "frontend", "aws",
    "performance", "ci-cd", "realtime", "microservices", "terraform", "redis",
    "streaming", "monitoring", "iot", "analytics", "nlp", "computer-vision",
    "embeddings", "vector-db", "webassembly", "webrtc", "auth", "caching", "testing",
    "devex", "cost-optimization", "fintech", "healthcare", "e-commerce", "logistics",
    "pix", "lgpd", "gdpr", "accessibility", "i18n", "design-system", "crdt",
    "collaboration", "chatbot", "ocr", "speech", "maps", "geospatial", "blockchain",
    "smart-contracts", "gpu", "batch", "etl", "dbt", "spark", "clickhouse",
    "opensearch", "feature-flags", "chaos-engineering", "sre", "platform-engineering",
    "multi-tenant", "rate-limiting", "webhooks", "notifications", "billing", "sso",
    "ebpf", "service-mesh", "sqlite", "duckdb", "legacy-migration", "mainframe",
)  # fmt: skip

#: Relative weight of each canonical language id (popular ones dominate).
LANGUAGE_WEIGHTS: dict[str, float] = {
    "python": 20, "typescript": 16, "javascript": 12, "go": 10, "java": 9, "sql": 8,
    "kotlin": 6, "rust": 6, "csharp": 6, "swift": 5, "bash": 3, "hcl": 2,
    "dockerfile": 2, "dart": 2, "ruby": 2, "php": 2, "cpp": 2, "html": 2, "css": 1.5,
    "scala": 1, "c": 1, "r": 1, "elixir": 1, "graphql": 1, "yaml": 1, "protobuf": 0.8,
    "julia": 0.5, "solidity": 0.5, "powershell": 0.5, "lua": 0.4, "haskell": 0.3,
    "clojure": 0.3, "zig": 0.3, "fsharp": 0.3, "erlang": 0.3, "objective-c": 0.3,
    "groovy": 0.3, "cuda": 0.3, "webassembly": 0.3, "cobol": 0.2, "ocaml": 0.2,
    "perl": 0.2, "nix": 0.2, "matlab": 0.2, "elm": 0.1, "apex": 0.1, "abap": 0.1,
    "gleam": 0.1, "crystal": 0.1, "nim": 0.1, "fortran": 0.1,
}  # fmt: skip

#: Technology -> (likely primary language, related tag or "").
_TECH_HINTS: dict[str, tuple[str, str]] = {
    "Kafka Streams": ("java", "kafka"), "Kafka": ("", "kafka"), "Redis": ("", "redis"),
    "PostgreSQL": ("sql", "postgres"), "OpenSearch": ("", "opensearch"),
    "Elasticsearch": ("", "search"), "DuckDB": ("sql", "duckdb"),
    "ClickHouse": ("sql", "clickhouse"), "gRPC": ("go", "grpc"),
    "GraphQL": ("typescript", "graphql"), "WebSockets": ("typescript", "realtime"),
    "WebRTC": ("typescript", "webrtc"), "WebAssembly": ("rust", "webassembly"),
    "Kubernetes": ("go", "kubernetes"), "AWS Lambda": ("python", "serverless"),
    "Cloudflare Workers": ("typescript", "edge"), "Deno": ("typescript", ""),
    "Bun": ("typescript", ""), "FastAPI": ("python", "api"), "Django": ("python", ""),
    "Spring Boot": ("java", "microservices"), "Ktor": ("kotlin", ""),
    "SwiftUI": ("swift", "mobile"), "Jetpack Compose": ("kotlin", "mobile"),
    "Flutter": ("dart", "mobile"), "React Native": ("typescript", "mobile"),
    "Next.js": ("typescript", "frontend"), "SvelteKit": ("typescript", "frontend"),
    "Tokio": ("rust", "performance"), "Go channels": ("go", ""),
    "NATS": ("go", "event-driven"), "RabbitMQ": ("", "event-driven"),
    "Temporal": ("go", ""), "Airflow": ("python", "etl"), "dbt": ("sql", "dbt"),
    "Spark": ("scala", "spark"), "Flink": ("java", "streaming"),
    "Ray": ("python", "machine-learning"), "PyTorch": ("python", "machine-learning"),
    "ONNX Runtime": ("python", "machine-learning"), "LangChain": ("python", "llm"),
    "pgvector": ("python", "vector-db"), "Qdrant": ("python", "vector-db"),
    "SQLite": ("", "sqlite"), "CRDTs": ("", "crdt"), "Yjs": ("typescript", "crdt"),
    "OpenTelemetry": ("", "observability"), "Prometheus": ("go", "monitoring"),
    "Grafana": ("", "observability"), "Terraform": ("hcl", "terraform"),
    "Pulumi": ("typescript", ""), "Istio": ("yaml", "service-mesh"),
    "Envoy": ("cpp", "service-mesh"), "eBPF": ("c", "ebpf"), "MQTT": ("", "iot"),
    "S3": ("", "aws"), "DynamoDB": ("", "aws"), "BigQuery": ("sql", "analytics"),
    "Snowflake": ("sql", "analytics"), "Supabase": ("typescript", "postgres"),
    "Firebase": ("typescript", "mobile"), "Stripe": ("", "payments"),
    "Keycloak": ("java", "sso"), "Vault": ("", "security"),
    "Phoenix LiveView": ("elixir", "realtime"), "Rails": ("ruby", ""),
    ".NET Aspire": ("csharp", ""), "Blazor": ("csharp", "frontend"),
}  # fmt: skip

# ---- description fragments ------------------------------------------------

_EN_OPENERS: tuple[str, ...] = (
    "Explores whether **{tech}** can sustain {n}k events/s for {domain}.",
    "Spike to see if `{tech}` is a good fit for {domain}.",
    "Proof of concept replacing the legacy cron jobs in {domain} with **{tech}**.",
    "Minimal end-to-end slice of {subject} for {domain}, built on `{tech}`.",
    "Compares **{tech}** against **{tech2}** on cost, latency and operability.",
    "Small experiment wiring `{tech}` and `{tech2}` together for {domain}.",
)  # fmt: skip

_EN_MIDDLES: tuple[str, ...] = (
    "Goal: cut p99 latency from {a} ms to under {b} ms.",
    "Built during a {d}-day hack week by the {team} squad.",
    "Uses `{tech2}` for persistence and exposes a small REST API.",
    "Integrates with the existing {domain} stack through a thin adapter.",
    "Includes a load-test harness and a Grafana dashboard.",
    "Data is synthetic; no customer information leaves the sandbox.",
    "Runs locally with `docker compose up` and seeds itself on start.",
    "Most of the complexity lives in the retry and back-pressure handling.",
)  # fmt: skip

_EN_CLOSERS: tuple[str, ...] = (
    "Result: {outcome}.", "Next step: {next_step}.",
    "See the README for setup and the ADR in `docs/` for trade-offs.",
    "Feedback welcome in #{channel}.",
)  # fmt: skip

_EN_OUTCOMES: tuple[str, ...] = (
    "promising, roughly {x}x the throughput of the current setup",
    "not worth it yet, the operational overhead is too high",
    "adopted by the {team} squad for production",
    "works, but needs a proper schema registry", "memory footprint is the main blocker",
    "latency target met with room to spare",
    "inconclusive, the benchmark was dominated by network noise",
)  # fmt: skip

_EN_NEXT_STEPS: tuple[str, ...] = (
    "run it against a copy of production traffic",
    "write an ADR and present it at the architecture guild",
    "harden auth and move the secrets to Vault", "try the same approach with `{tech2}`",
    "measure cost per million requests",
)  # fmt: skip

_EN_BULLET_HEADINGS: tuple[str, ...] = (
    "**Highlights**",
    "**What it covers**",
    "**Scope**",
)

_EN_BULLETS: tuple[str, ...] = (
    "Idempotent retries with exponential back-off", "OpenTelemetry traces end to end",
    "Feature-flagged rollout", "Terraform module for the infrastructure",
    "Contract tests against the staging API", "p95 under {b} ms at {n}00 rps",
    "Dead-letter queue with replay tooling", "Row-level security per tenant",
    "Schema migrations with zero downtime", "Golden-path template for new services",
    "Runbook and on-call alerts", "Accessibility pass (WCAG 2.2 AA)",
)  # fmt: skip

_TEAMS: tuple[str, ...] = (
    "payments", "platform", "growth", "mobile", "data", "risk", "search", "checkout",
    "identity", "SRE", "ML", "logistics",
)  # fmt: skip

_CHANNELS: tuple[str, ...] = (
    "poc-dojo", "arch-guild", "platform-help", "data-eng", "mobile-dev", "sre",
)  # fmt: skip

_PT_OPENERS: tuple[str, ...] = (
    "Prova de conceito para {pt_domain} usando **{tech}**.",
    "Experimento rápido para avaliar `{tech}` em {pt_domain}.",
    "Protótipo que substitui a integração manual em {pt_domain} por **{tech}**.",
)  # fmt: skip

_PT_SENTENCES: tuple[str, ...] = (
    "Objetivo: reduzir a latência p99 de {a} ms para menos de {b} ms.",
    "Desenvolvida em {d} dias pelo time de {team}.",
    "Integra com o sistema legado via API REST e filas em `{tech2}`.",
    "Resultado: funciona, mas ainda precisa de observabilidade e testes de carga.",
    "Veja o README para rodar localmente com `docker compose up`.",
    "Os dados são sintéticos e seguem as regras da LGPD.",
    "Próximo passo: validar com usuários reais da operação.",
)  # fmt: skip

_PT_BULLETS: tuple[str, ...] = (
    "Reprocessamento idempotente de eventos", "Métricas expostas em Prometheus",
    "Testes de contrato com o ambiente de homologação",
    "Criptografia de dados sensíveis", "Deploy automatizado via GitHub Actions",
    "Tratamento de erros com reenvio automático",
)  # fmt: skip

# ---- distributions --------------------------------------------------------

_LANG_COUNT_CUM: tuple[float, ...] = (0.52, 0.87, 1.0)  # 1, 2 or 3 languages
_SENTENCE_COUNT_CUM: tuple[float, ...] = (0.15, 0.45, 0.80, 1.0)  # 1..4 sentences
_STATUS_CUM: tuple[float, ...] = (0.76, 0.90, 1.0)  # active, draft, archived
_REPO_PROBABILITY = 0.7
_BULLET_PROBABILITY = 0.3

_SLUG_STRIP_RE = re.compile(r"[^a-z0-9]+")


def _cumulative(weights: Sequence[float]) -> tuple[float, ...]:
    """Cumulative weights normalised so the last entry is exactly 1.0."""
    cum = list(accumulate(weights))
    total = cum[-1]
    out = [c / total for c in cum]
    out[-1] = 1.0
    return tuple(out)


_LANG_IDS: tuple[str, ...] = tuple(LANGUAGE_WEIGHTS)
_LANG_CUM = _cumulative(tuple(LANGUAGE_WEIGHTS.values()))
_TAG_CUM = _cumulative([1.0 / (rank**1.07) for rank in range(1, len(TAG_VOCABULARY) + 1)])
_TAG_COUNT_CUM = _cumulative((0.08, 0.15, 0.25, 0.24, 0.15, 0.08, 0.05))  # 0..6 tags


def _slugify(text: str, max_len: int = 60) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _SLUG_STRIP_RE.sub("-", ascii_text.lower()).strip("-")
    if len(slug) > max_len:
        slug = slug[:max_len].rstrip("-")
    return slug or "poc"


def _clip(text: str, max_len: int) -> str:
    """Clip ``text`` to ``max_len`` characters on a word boundary when possible."""
    if len(text) <= max_len:
        return text
    cut = text[:max_len]
    space = cut.rfind(" ")
    return (cut[:space] if space > max_len // 2 else cut).rstrip()


@functools.cache
def _check_vocabulary() -> None:
    """Fail loudly if the vocabularies drift from the catalogue / slug rules."""
    cat = catalogue()
    hinted = {lang for lang, _ in _TECH_HINTS.values() if lang}
    for lang_id in (*_LANG_IDS, *hinted):
        if cat.normalise(lang_id) != lang_id:
            raise ValueError(f"seed corpus language {lang_id!r} is not a canonical id")
    slug_re = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
    tags = set(TAG_VOCABULARY)
    if len(tags) != len(TAG_VOCABULARY):
        raise ValueError("duplicate tag in TAG_VOCABULARY")
    for tag in tags | {t for _, t in _TECH_HINTS.values() if t}:
        if tag not in tags or not slug_re.fullmatch(tag) or len(tag) > MAX_TAG_LEN:
            raise ValueError(f"invalid seed tag {tag!r}")
    if set(_TECH_HINTS) != set(_TECHS):
        raise ValueError("_TECH_HINTS must cover exactly _TECHS")


def generate_pocs(
    count: int,
    *,
    seed: int,
    year_range: tuple[int, int] = (2023, 2026),
) -> Iterator[SeedPoc]:
    """Yield ``count`` deterministic, realistic :class:`SeedPoc` records.

    ``year_range`` is inclusive: ``(2023, 2026)`` spreads ``built_on`` over
    2023-01-01 .. 2026-12-31. Only ``random.Random(seed)`` is used.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    first_year, last_year = year_range
    if first_year > last_year:
        raise ValueError("year_range must be (first, last) with first <= last")
    _check_vocabulary()
    # Validate eagerly (above), generate lazily.
    return _generate(count, seed, first_year, last_year)


def _generate(count: int, seed: int, first_year: int, last_year: int) -> Iterator[SeedPoc]:
    rng = random.Random(seed)
    rand: Callable[[], float] = rng.random

    def pick(items: Sequence[str]) -> str:
        return items[int(rand() * len(items))]

    start_ordinal = datetime.date(first_year, 1, 1).toordinal()
    span_days = datetime.date(last_year, 12, 31).toordinal() - start_ordinal + 1
    fromordinal = datetime.date.fromordinal

    techs, subjects, qualifiers, domains = _TECHS, _SUBJECTS, _QUALIFIERS, _DOMAINS
    tech_hints = _TECH_HINTS
    lang_ids, lang_cum = _LANG_IDS, _LANG_CUM
    tag_vocab, tag_cum = TAG_VOCABULARY, _TAG_CUM
    statuses = STATUSES

    for _ in range(count):
        tech = pick(techs)
        tech2 = pick(techs)
        if tech2 == tech:
            tech2 = techs[(techs.index(tech) + 1) % len(techs)]
        subject = pick(subjects)
        domain = pick(domains)

        # ---- name ----------------------------------------------------------
        r = rand()
        portuguese = False
        if r < 0.10:
            portuguese = True
            base = pick(_PT_SUBJECTS)
            t = rand()
            if t < 0.25:
                name = f"{base} com {tech}"
            elif t < 0.40:
                name = f"{base} via {tech}"
            elif t < 0.65:
                name = f"{base} para {pick(_PT_DOMAINS)}"
            elif t < 0.80:
                name = f"{base} em tempo real com {tech}"
            else:
                name = base
        elif r < 0.13:
            base = pick(_ES_SUBJECTS)
            t = rand()
            if t < 0.4:
                name = f"{base} con {tech}"
            elif t < 0.8:
                name = f"{base} para {pick(_ES_DOMAINS)}"
            else:
                name = f"{base} en tiempo real"
        elif r < 0.15:
            base = pick(_DE_SUBJECTS)
            t = rand()
            if t < 0.4:
                name = f"{base} mit {tech}"
            elif t < 0.8:
                name = f"{base} für {pick(_DE_DOMAINS)}"
            else:
                name = f"{base} in Echtzeit"
        else:
            cap_subject = subject[0].upper() + subject[1:]
            t = int(rand() * 10)
            if t == 0:
                name = f"{pick(qualifiers)} {subject} with {tech}"
            elif t == 1:
                name = f"{pick(qualifiers)} {subject}"
            elif t == 2:
                name = f"{tech} {subject} for {domain}"
            elif t == 3:
                name = f"{cap_subject} for {domain} using {tech}"
            elif t == 4:
                name = f"{pick(qualifiers)} {subject} for {domain}"
            elif t == 5:
                name = f"{cap_subject} on {tech}"
            elif t == 6:
                name = f"{tech} + {tech2} {subject}"
            elif t == 7:
                name = f"{pick(_VERBS)} {subject} with {tech}"
            elif t == 8:
                name = f"Benchmarking {tech} vs {tech2} for {subject}"
            else:
                name = f"Spike: {subject} with {tech}"
            if rand() < 0.06:
                name += pick(_SUFFIXES)
        name = _clip(name, MAX_NAME_LEN)

        # ---- description --------------------------------------------------
        n_sentences = bisect(_SENTENCE_COUNT_CUM, rand()) + 1
        team = pick(_TEAMS)
        a = 80 + int(rand() * 900)
        b = 5 + int(rand() * (a // 3))
        if portuguese:
            idx = int(rand() * len(_PT_SENTENCES))
            parts = [pick(_PT_OPENERS)]
            parts.extend(
                _PT_SENTENCES[(idx + k) % len(_PT_SENTENCES)] for k in range(n_sentences - 1)
            )
            text = " ".join(parts).format(
                pt_domain=pick(_PT_DOMAINS),
                tech=tech,
                tech2=tech2,
                a=a,
                b=b,
                d=2 + int(rand() * 12),
                team=team,
            )
            bullets = _PT_BULLETS
            heading = "**Destaques**"
        else:
            parts = [pick(_EN_OPENERS)]
            if n_sentences >= 3:
                mid = int(rand() * len(_EN_MIDDLES))
                parts.append(_EN_MIDDLES[mid])
                if n_sentences == 4:
                    parts.append(_EN_MIDDLES[(mid + 1) % len(_EN_MIDDLES)])
            if n_sentences >= 2:
                parts.append(pick(_EN_CLOSERS))
            text = " ".join(parts).format(
                tech=tech,
                tech2=tech2,
                domain=domain,
                subject=subject,
                n=1 + int(rand() * 50),
                a=a,
                b=b,
                d=2 + int(rand() * 12),
                team=team,
                channel=pick(_CHANNELS),
                outcome=pick(_EN_OUTCOMES).format(x=2 + int(rand() * 8), team=team),
                next_step=pick(_EN_NEXT_STEPS).format(tech2=tech2),
            )
            bullets = _EN_BULLETS
            heading = pick(_EN_BULLET_HEADINGS)
        if rand() < _BULLET_PROBABILITY:
            first = int(rand() * len(bullets))
            k = 2 + int(rand() * 3)
            items = "\n".join(
                "- " + bullets[(first + j) % len(bullets)].format(b=b, n=1 + int(rand() * 50))
                for j in range(k)
            )
            text = f"{text}\n\n{heading}\n\n{items}"
        description = _clip(text, MAX_DESCRIPTION_LEN)

        # ---- languages ----------------------------------------------------
        n_langs = bisect(_LANG_COUNT_CUM, rand()) + 1
        hint_lang, hint_tag = tech_hints[tech]
        langs: list[str] = []
        if hint_lang and rand() < 0.7:
            langs.append(hint_lang)
        while len(langs) < n_langs:
            lang = lang_ids[bisect(lang_cum, rand())]
            if lang not in langs:
                langs.append(lang)

        # ---- tags ---------------------------------------------------------
        n_tags = bisect(_TAG_COUNT_CUM, rand())
        tags: list[str] = []
        if hint_tag and n_tags and rand() < 0.6:
            tags.append(hint_tag)
        while len(tags) < n_tags:
            tag = tag_vocab[bisect(tag_cum, rand())]
            if tag not in tags:
                tags.append(tag)

        # ---- status, date, repo ---------------------------------------------
        status = statuses[bisect(_STATUS_CUM, rand())]
        built_on = fromordinal(start_ordinal + int(rand() * span_days))
        repo_url = REPO_BASE_URL + _slugify(name) if rand() < _REPO_PROBABILITY else None

        yield SeedPoc(
            name=name,
            description=description,
            languages=tuple(langs),
            tags=tuple(tags),
            status=status,
            built_on=built_on,
            repo_url=repo_url,
        )
