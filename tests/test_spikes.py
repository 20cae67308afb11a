"""Spike detection: a pure function, checked on random noise, injected surges and real data."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from crisis_console.services.spikes import WEEK, detect, label, poisson_tail_score, quiet_rate

START = datetime(2015, 1, 27, 12, 0, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def poisson(rng: random.Random, rate: float) -> int:
    """Draw a Poisson count (Knuth), enough for small rates."""
    limit, k, product = 2.718281828459045**-rate, 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def test_tail_score_grows_with_surprise():
    """More observed against the same expectation is more surprising; at or below it, none."""
    assert poisson_tail_score(3, 3.0) == 0.0
    assert poisson_tail_score(1, 4.0) == 0.0
    assert 0 < poisson_tail_score(8, 3.0) < poisson_tail_score(15, 3.0) < poisson_tail_score(40, 3.0)
    assert abs(poisson_tail_score(10, 1.0) - 6.96) < 0.05  # P(X ≥ 10 | λ=1) ≈ 1.1e-7


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.floats(min_value=0.2, max_value=20))
def test_steady_noise_is_almost_never_flagged(seed, hourly_rate):
    """A category at its usual Poisson rate is not a spike (fixed seeds, many rates)."""
    rng = random.Random(seed)
    history = [poisson(rng, hourly_rate) for _ in range(3 * 168)]
    recent = [poisson(rng, hourly_rate / 12) for _ in range(12)]
    assert detect({"steady": recent}, {"steady": history}, START, FIVE, recorded=[True] * 3) == []


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=10_000),
    st.floats(min_value=0.1, max_value=5),
    st.integers(min_value=6, max_value=20),
)
def test_a_surge_is_flagged_within_the_hour(seed, hourly_rate, factor):
    """A k-fold surge over the last hour is flagged, with observed, expected and when it began."""
    rng = random.Random(seed)
    history = [poisson(rng, hourly_rate) for _ in range(3 * 168)]
    # The usual noise plus an injected surge of k times the usual rate (at least one a bucket).
    extra = math.ceil(hourly_rate * factor / 12)
    recent = [poisson(rng, hourly_rate / 12) + extra for _ in range(12)]
    found = detect({"snow": recent}, {"snow": history}, START, FIVE, recorded=[True] * 3)
    assert [s.category for s in found] == ["snow"]
    assert found[0].observed == sum(recent) and found[0].expected < found[0].observed
    assert START <= found[0].since <= START + 12 * FIVE


def test_the_next_storm_stands_out_against_the_same_weekday_not_the_last_storm():
    """A storm three to five days ago lifts the trailing week; the same hours of the same weekday
    in earlier weeks were quiet, so the next storm's first hour is a spike, but only when the
    console was running in those weeks (a fresh console's empty weeks prove nothing)."""
    quiet_week = [0] * 168
    last_week = [0] * 168
    for day in (2, 3, 4):  # 3 to 5 days before the window: 10 an hour all day
        last_week[day * 24 : day * 24 + 24] = [10] * 24
    history = quiet_week + quiet_week + last_week
    recent = [1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1]  # 8 in the hour: modest, but new for a Tuesday
    assert detect({"snow": recent}, {"snow": history}, START, FIVE) == []  # the trailing week alone
    [spike] = detect({"snow": recent}, {"snow": history}, START, FIVE, recorded=[True] * 3)
    assert spike.observed == 8 and spike.expected < 1 and spike.score >= 5
    assert detect({"snow": recent}, {"snow": history}, START, FIVE, recorded=[True, False, False]) == []


def test_a_hazards_categories_are_counted_together():
    """Three and two complaints are nothing alone, but five for one hazard against a quiet
    usual level is news: the spike names the hazard, its categories and the busiest one."""
    quiet = [0] * (3 * WEEK + 1)
    recent = {"misc_snow": [0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0], "plowing": [0] * 10 + [1, 1]}
    history = {"misc_snow": quiet, "plowing": quiet, "no_heat": quiet}
    hazards = {"winter_storm": ["misc_snow", "plowing", "no_heat"]}
    assert detect(recent, history, START, FIVE, recorded=[True] * 3) == []
    [spike] = detect(recent, history, START, FIVE, recorded=[True] * 3, hazards=hazards)
    assert (spike.category, spike.hazard, spike.members) == (
        "misc_snow",
        "winter_storm",
        ("misc_snow", "plowing"),
    )
    assert spike.observed == 5 and spike.since == START + 2 * FIVE
    assert (
        spike.public()["categories"] == ["misc_snow", "plowing"]
        and spike.public()["hazard"] == "winter_storm"
    )
    names = {"misc_snow": "Misc. snow", "plowing": "Plowing"}
    assert label(spike.public(), names) == "Winter storm contacts (Misc. snow, Plowing)"
    # A fresh console (weeks not recorded) has no usual level to compare with.
    assert detect(recent, history, START, FIVE, recorded=[True, False, False], hazards=hazards) == []
    # One category alone is its own spike (when it is one), never its hazard's.
    alone = {"misc_snow": [0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0]}
    found = detect(alone, history, START, FIVE, recorded=[True] * 3, hazards=hazards)
    assert [(s.category, s.hazard) for s in found] == [("misc_snow", None)]


def test_a_category_flagged_alone_is_not_repeated_as_its_hazard():
    """When a category of the hazard is a spike on its own, that spike carries the news."""
    quiet = [0] * (3 * WEEK + 1)
    recent = {"misc_snow": [2] * 12, "plowing": [0] * 11 + [1]}
    hazards = {"winter_storm": ["misc_snow", "plowing"]}
    found = detect(
        recent, {"misc_snow": quiet, "plowing": quiet}, START, FIVE, recorded=[True] * 3, hazards=hazards
    )
    assert [(s.category, s.hazard) for s in found] == [("misc_snow", None)]


def test_the_usual_level_of_a_hazard_forgets_one_storm_week():
    """The median of three weeks: one stormy week does not make storms normal; two do."""

    def weeks(*levels: int) -> list[int]:
        hourly = [0]
        for level in levels:  # oldest first
            hourly += [level] * WEEK
        return hourly

    assert quiet_rate(weeks(0, 0, 12), [True] * 3) < 0.1
    assert (
        quiet_rate(weeks(0, 12, 12), [True] * 3) >= 8
    )  # (the hour before a week is the last of the week before)
    assert quiet_rate(weeks(0, 0, 12), [True, False, False]) is None


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.floats(min_value=0.05, max_value=3))
def test_a_hazards_steady_noise_is_almost_never_flagged(seed, hourly_rate):
    """Three categories of one hazard at their usual Poisson rates are not a spike together."""
    rng = random.Random(seed)
    names = ["a", "b", "c"]
    history = {n: [poisson(rng, hourly_rate) for _ in range(3 * WEEK + 1)] for n in names}
    recent = {n: [poisson(rng, hourly_rate / 12) for _ in range(12)] for n in names}
    found = detect(recent, history, START, FIVE, recorded=[True] * 3, hazards={"flood": names})
    assert found == []


def test_falling_categories_are_not_surges_and_area_is_named():
    """A drop is never a spike; a spike concentrated in one ZIP code names it."""
    busy = [20] * 168
    assert detect({"down": [0] * 12}, {"down": busy}, START, FIVE) == []
    found = detect(
        {"snow": [0] * 6 + [4] * 6},
        {"snow": [0] * 168},
        START,
        FIVE,
        zips={"snow": {"02124": 20, "02125": 4}},
    )
    assert found[0].zip == "02124"
    assert found[0].public()["zip"] == "02124" and found[0].public()["observed"] == 24


def test_scheduler_announces_a_new_spike_once(store):
    """A surge logged now is detected by the scheduler pass and announced once, with its area."""
    from crisis_console import clock, scheduler
    from crisis_console.services.categories import Categories
    from crisis_console.services.intake import Intake

    Categories(store).create({"name": "Downed wires"})
    now = clock.now()
    records = [
        {
            "category": "downed wires",
            "zip": "02124",
            "occurred_at": clock.iso(now - timedelta(minutes=m % 20)),
        }
        for m in range(30)
    ]
    assert Intake(store).submit(records, channel="phone", source="test")["accepted"] == 30
    spiked: list[dict] = []
    scheduler.run_pass(store, now=now, spiked=spiked.append)
    assert [(s["category"], s.get("zip"), s["observed"]) for s in spiked] == [("downed_wires", "02124", 30)]
    store.redis.delete(store.keys.scheduler_lock())
    scheduler.run_pass(store, now=now, spiked=spiked.append)
    assert len(spiked) == 1  # still surging, not announced again


def test_a_hazard_surge_is_announced_once_whichever_category_leads(store):
    """Snow complaints in two categories, each too few alone, raise one winter-storm spike; the
    next pass, with the other category now the busiest, does not announce it again."""
    from crisis_console import clock, scheduler
    from crisis_console.services import trends
    from crisis_console.services.categories import Categories
    from crisis_console.services.intake import Intake

    for name in ("Misc snow", "Plowing", "No heat"):
        Categories(store).create({"name": name, "hazards": ["winter_storm"]})
    Categories(store).create({"name": "Street lights"})
    now = clock.now()
    intake = Intake(store)
    # The console ran in the three weeks before (one street light a day), with no snow at all.
    history = [
        {"category": "street lights", "occurred_at": clock.iso(now - timedelta(days=d))} for d in range(1, 22)
    ]
    assert intake.submit(history, channel="phone", source="test")["accepted"] == 21

    def log(category: str, count: int) -> None:
        records = [
            {"category": category, "occurred_at": clock.iso(now - timedelta(minutes=m))} for m in range(count)
        ]
        assert intake.submit(records, channel="phone", source="test")["accepted"] == count

    log("misc snow", 3)
    log("plowing", 2)
    spiked: list[dict] = []
    scheduler.run_pass(store, now=now, spiked=spiked.append)
    assert [(s["hazard"], s["category"], s["categories"], s["observed"]) for s in spiked] == [
        ("winter_storm", "misc_snow", ["misc_snow", "plowing"], 5)
    ]
    log("plowing", 2)
    [still] = trends.spikes_at(store, at=clock.iso(now))["spikes"]
    assert (still["hazard"], still["category"], still["observed"]) == ("winter_storm", "plowing", 7)
    store.redis.delete(store.keys.scheduler_lock())
    scheduler.run_pass(store, now=now, spiked=spiked.append)
    assert len(spiked) == 1  # the same surge, not announced again
