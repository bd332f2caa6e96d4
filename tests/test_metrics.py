"""The coordinator's fast summaries must give hdrhistogram's own answers, exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.config.model import split
from loadgen.stats.metrics import (
    HIGHEST_US,
    PERCENTILES,
    Tally,
    Totals,
    latency_ms,
    new_histogram,
    percentiles_us,
)

values = st.lists(st.integers(min_value=0, max_value=HIGHEST_US), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(values, st.lists(st.floats(min_value=0.0001, max_value=100.0), min_size=1, max_size=8))
def test_percentiles_match_hdrhistogram(recorded: list[int], percentiles: list[float]) -> None:
    hist = new_histogram()
    for v in recorded:
        hist.record_value(v)
    assert percentiles_us(hist, percentiles) == [hist.get_value_at_percentile(p)
                                                 for p in percentiles]


@settings(max_examples=30, deadline=None)
@given(values)
def test_summary_matches_hdrhistogram(recorded: list[int]) -> None:
    hist = new_histogram()
    for v in recorded:
        hist.record_value(v)
    lat = latency_ms(hist)
    assert lat["mean"] == round(hist.get_mean_value() / 1000.0, 4)
    assert lat["min"] == hist.get_min_value() / 1000.0
    assert lat["max"] == hist.get_max_value() / 1000.0
    for name, p in PERCENTILES:
        assert lat[name] == hist.get_value_at_percentile(p) / 1000.0


def test_merge_over_the_wire_is_lossless() -> None:
    tallies = [Tally() for _ in range(3)]
    direct = new_histogram()
    for i in range(3000):
        value = (i * 7919) % 250_000 + 1
        tallies[i % 3].record(200 if i % 10 else 503, value, 100, 50)
        direct.record_value(value)
    merged = Totals()
    for tally in tallies:
        merged.add_wire(tally.to_wire())
    assert merged.requests == 3000 and merged.successes == 2700
    assert merged.codes == {"200": 2700, "503": 300}
    assert merged.hist.get_total_count() == 3000
    assert latency_ms(merged.hist) == latency_ms(direct)


def test_out_of_range_latency_is_counted_not_lost() -> None:
    tally = Tally()
    tally.record(200, HIGHEST_US * 10, 0, 0)
    assert tally.overflow == 1 and tally.hist.get_total_count() == 1


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=1, max_value=500))
def test_split_is_exact_and_even(total: int, parts: int) -> None:
    shares = split(total, parts)
    assert sum(shares) == total and len(shares) == parts
    assert max(shares) - min(shares) <= 1


@given(st.lists(st.floats(min_value=1e-6, max_value=1e6), min_size=1, max_size=6))
def test_endpoint_cycle_keeps_every_endpoint(weights: list[float]) -> None:
    from loadgen.config.model import endpoint_cycle

    cycle = endpoint_cycle(weights)
    assert set(cycle) == set(range(len(weights)))
    assert len(cycle) <= 10_000 + len(weights)


def test_endpoint_cycle_matches_integer_weights() -> None:
    from loadgen.config.model import endpoint_cycle

    cycle = endpoint_cycle([5, 3, 2])
    assert [cycle.count(i) for i in range(3)] == [5, 3, 2]
    assert endpoint_cycle([1, 1, 1]) == (0, 1, 2)
