"""bench-dojo pools its alternating rounds: every sample counts once, percentiles are taken
over the pooled samples (not averaged), CPU is the mean of the rounds."""

from __future__ import annotations

from array import array

from loadtests.bench_dojo import Durability, GroupUsage, LoadResult, SideRun, pooled


def side_run(latencies: list[float], cpu: float, edits: int) -> SideRun:
    load = LoadResult(edits_measured=edits, deliveries=len(latencies))
    load.latencies = array("d", latencies)
    load.close_codes = {"1006": 1}
    usage = {"gateway": GroupUsage(cpu_percent=cpu, rss_mib=cpu, peak_rss_mib=cpu, processes=1)}
    durable = Durability(
        rows=edits, edits_logged=edits, edits=edits, relayed=edits, relayed_logged=edits
    )
    return SideRun("project", load, usage, cpu, [f"p{cpu:g}"], 30.0, durable=durable)


def test_rounds_pool_their_samples_and_average_their_cpu() -> None:
    quiet = side_run([1.0] * 99 + [2.0], cpu=20.0, edits=100)
    noisy = side_run([1.0] * 98 + [50.0, 60.0], cpu=30.0, edits=100)
    merged = pooled([quiet, noisy])
    assert len(merged.load.latencies) == 200
    assert merged.round_p99_ms == [1.0, 50.0]
    # nearest rank over the 200 pooled samples: rank 198 of [1.0 x197, 2.0, 50.0, 60.0]
    assert merged.load.percentile(0.99) == 2.0
    assert merged.load.edits_measured == 200
    assert merged.load.deliveries == 200
    assert merged.load.close_codes == {"1006": 2}
    assert merged.usage["gateway"].cpu_percent == 25.0
    assert merged.usage["gateway"].rss_mib == 30.0  # memory: the last round
    assert merged.usage["gateway"].peak_rss_mib == 30.0
    assert merged.load_duration == 60.0
    assert merged.durable == Durability(200, 200, 200, 200, 200)
    assert merged.others == ["p20", "p30"]


def test_one_round_is_itself() -> None:
    only = side_run([3.0, 4.0], cpu=10.0, edits=2)
    assert pooled([only]) is only
    assert only.round_p99_ms == [4.0]
