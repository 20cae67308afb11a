"""Spike detection: pure math over counts, no I/O.

For each category, the count in the recent window is compared with what its own history
predicts, in two ways:

* the trailing week: the hours just before the window, the same hours of the previous days,
  and a share of the busiest recent hour, smoothed with a small prior so a category with
  little history expects a little, not nothing;
* the same hours of the same weekday in the previous weeks the console was running (at
  least ``min_weeks`` of them), which does not remember a storm of a few days ago, so the
  next storm's first hours stand out — at a stricter score, as it is the touchier view.

A count is a spike when it is improbable under either expectation (Poisson upper tail), at
least ``min_count`` and at least ``min_ratio`` times that expectation. Falling counts are
never spikes. When most of a spike comes from one ZIP code, the spike names it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Settings:
    """Thresholds of the detector."""

    min_count: int = 5
    min_ratio: float = 3.0
    #: -log10 of the Poisson upper-tail probability needed (4 = one chance in 10,000).
    min_score: float = 4.0
    #: Prior: this many events over this many hours (a category never seen expects 1 a day).
    prior_events: float = 1.0
    prior_hours: float = 24.0
    #: Share of the busiest past hour taken as the least a category is expected to reach.
    burst_share: float = 0.25
    #: Share of the observed count one ZIP code needs to be named as the area.
    area_share: float = 0.5
    #: The same-weekday view needs this many recorded weeks, and this score.
    min_weeks: int = 2
    weekly_min_score: float = 5.0


@dataclass(frozen=True)
class Spike:
    """A category (and maybe an area) counted far above its expectation."""

    category: str
    observed: int
    expected: float
    since: datetime
    score: float
    zip: str | None = None

    def public(self) -> dict[str, object]:
        """Return the spike as the API shows it."""
        from crisis_console import clock

        data: dict[str, object] = {
            "category": self.category,
            "observed": self.observed,
            "expected": round(self.expected, 2),
            "since": clock.iso(self.since),
            "score": round(self.score, 1),
        }
        if self.zip:
            data["zip"] = self.zip
        return data


def poisson_tail_score(observed: int, expected: float) -> float:
    """Return -log10 P(X ≥ observed) for X ~ Poisson(expected) (0 when observed ≤ expected)."""
    if observed <= expected or observed <= 0:
        return 0.0
    expected = max(expected, 1e-9)
    # Sum the tail from ``observed`` upwards in log space until terms stop mattering.
    log_term = -expected + observed * math.log(expected) - math.lgamma(observed + 1)
    log_total = log_term
    k = observed
    while True:
        k += 1
        log_term += math.log(expected) - math.log(k)
        if log_term < log_total - 40:
            break
        log_total = max(log_total, log_term) + math.log1p(math.exp(-abs(log_total - log_term)))
    return max(0.0, -log_total / math.log(10))


def expected_rate(hourly: list[int], settings: Settings = Settings()) -> float:
    """Return the hourly rate a category's history predicts for the hour after it.

    ``hourly`` is the category's counts per hour, oldest first, ending just before the
    window, in whole days. Contact volume follows the clock (busy mornings, quiet nights),
    and some categories arrive in bursts (a worker logging a batch), so the rate is the
    largest of: the smoothed average, the average of the same hour of day (± 1 hour) on
    the previous days, and a quarter of the busiest hour seen (so a burst like past ones
    needs to be well beyond it to be news).
    """
    hours = len(hourly)
    average = (sum(hourly) + settings.prior_events) / (hours + settings.prior_hours)
    same_hour = [hourly[i] for i in range(hours) if (hours - i) % 24 in (0, 1, 23)]
    seasonal = sum(same_hour) / len(same_hour) if same_hour else 0.0
    busiest = max(hourly, default=0) * settings.burst_share
    return max(average, seasonal, busiest)


WEEK = 7 * 24


def weekly_rate(hourly: list[int], recorded: list[bool], settings: Settings = Settings()) -> float | None:
    """Return the hourly rate the same hour (± 1) of the same weekday predicts, or None.

    ``hourly`` ends just before the window (whole weeks); ``recorded[w]`` tells whether the
    console was running in the week ``w + 1`` weeks back (a fresh console's empty weeks are
    not taken for quiet ones). None when fewer than ``min_weeks`` weeks were recorded.
    """
    hours = len(hourly)
    weeks = [w + 1 for w, seen in enumerate(recorded) if seen and (w + 1) * WEEK <= hours + 1]
    if len(weeks) < settings.min_weeks:
        return None
    slots = [hourly[i] for w in weeks for i in (hours - WEEK * w + k for k in (-1, 0, 1)) if 0 <= i < hours]
    span = hourly[-WEEK * max(weeks) :]
    average = sum(span) / len(span)
    floor = settings.prior_events / settings.prior_hours
    return max(
        sum(slots) / len(slots), max(slots) * settings.burst_share, average * settings.burst_share, floor
    )


def detect(
    recent: dict[str, list[int]],
    history: dict[str, list[int]],
    window_start: datetime,
    bucket: timedelta,
    zips: dict[str, dict[str, int]] | None = None,
    settings: Settings = Settings(),
    recorded: list[bool] | None = None,
) -> list[Spike]:
    """Return the spikes, strongest first.

    Args:
        recent: category -> counts per bucket over the window, oldest first.
        history: category -> counts per hour before the window, oldest first (whole days;
            whole weeks for the same-weekday view).
        window_start: when the first recent bucket starts.
        zips: category -> zip -> count over the window (for naming the area).
        recorded: for each week back (1, 2, …), whether the console was running then.
    """
    spikes: list[Spike] = []
    for category, counts in recent.items():
        observed = sum(counts)
        if observed < settings.min_count:
            continue
        window_hours = len(counts) * bucket / timedelta(hours=1)
        hourly = history.get(category) or [0] * 24
        views = [(expected_rate(hourly[-WEEK:], settings) * window_hours, settings.min_score)]
        weekly = weekly_rate(hourly, recorded or [], settings)
        if weekly is not None:
            views.append((weekly * window_hours, settings.weekly_min_score))
        found = None
        for expected, min_score in sorted(views, reverse=True):
            if observed < settings.min_ratio * expected:
                continue
            score = poisson_tail_score(observed, expected)
            if score >= min_score:
                found = (expected, score)
                break
        if found is None:
            continue
        expected, score = found
        per_bucket = expected / len(counts)
        first = next((i for i, n in enumerate(counts) if n > 0 and n >= settings.min_ratio * per_bucket), 0)
        area = None
        for zip_code, count in (zips or {}).get(category, {}).items():
            if count >= settings.min_count and count >= settings.area_share * observed:
                area = zip_code
        spikes.append(Spike(category, observed, expected, window_start + first * bucket, score, area))
    return sorted(spikes, key=lambda s: s.score, reverse=True)
