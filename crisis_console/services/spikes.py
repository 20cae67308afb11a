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

Residents describe one storm in several ways ("misc. snow", "plowing", "no heat"), so at a
storm's start each category alone may still be too small to be news while together they
plainly are. The categories that answer one hazard are therefore also counted together,
against the median of their same-weekday hours over the recorded weeks: the median, so that
one storm week among three does not make storms look normal. A hazard spike names the
hazard and its busiest category; it is left out when one of its categories is flagged alone.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


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
    #: The score a hazard's categories counted together need.
    hazard_min_score: float = 4.5


@dataclass(frozen=True)
class Spike:
    """A category (and maybe an area) counted far above its expectation."""

    category: str
    observed: int
    expected: float
    since: datetime
    score: float
    zip: str | None = None
    #: For a hazard spike: the hazard, and its categories counted in the window, busiest first
    #: (``category`` is the busiest).
    hazard: str | None = None
    members: tuple[str, ...] = ()

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
        if self.hazard:
            data["hazard"] = self.hazard
            data["categories"] = list(self.members)
        return data


def subject(spike: Mapping[str, Any]) -> str:
    """Return what a spike is about, for announcing it once: ``hazard:NAME`` for a hazard's
    categories counted together (its busiest category can change from look to look, and a
    hazard may share its name with a category), else the category's code."""
    return f"hazard:{spike['hazard']}" if spike.get("hazard") else str(spike["category"])


def label(spike: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """Return how people read a spike (as ``public`` gives it), with category ``names`` by code."""
    if spike.get("hazard"):
        categories = ", ".join(names.get(code, code) for code in spike.get("categories", ()))
        return f"{str(spike['hazard']).replace('_', ' ').capitalize()} contacts ({categories})"
    return names.get(spike["category"], spike["category"])


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


def _weeks_back(hours: int, recorded: list[bool], settings: Settings) -> list[int] | None:
    """Return the weeks back (1, 2, …) recorded and covered by ``hours`` of history, or None.

    None when fewer than ``min_weeks`` (a fresh console's empty weeks are not quiet ones).
    """
    weeks = [w + 1 for w, seen in enumerate(recorded) if seen and (w + 1) * WEEK <= hours + 1]
    return weeks if len(weeks) >= settings.min_weeks else None


def _same_hours(hourly: list[int], week: int) -> list[int]:
    """Return the counts of the hour after ``hourly`` (± 1), ``week`` weeks earlier."""
    hours = len(hourly)
    return [hourly[i] for i in (hours - WEEK * week + k for k in (-1, 0, 1)) if 0 <= i < hours]


def weekly_rate(hourly: list[int], recorded: list[bool], settings: Settings = Settings()) -> float | None:
    """Return the hourly rate the same hour (± 1) of the same weekday predicts, or None.

    ``hourly`` ends just before the window (whole weeks); ``recorded[w]`` tells whether the
    console was running in the week ``w + 1`` weeks back. None when fewer than ``min_weeks``
    weeks were recorded.
    """
    weeks = _weeks_back(len(hourly), recorded, settings)
    if weeks is None:
        return None
    slots = [n for week in weeks for n in _same_hours(hourly, week)]
    span = hourly[-WEEK * max(weeks) :]
    average = sum(span) / len(span)
    floor = settings.prior_events / settings.prior_hours
    return max(
        sum(slots) / len(slots), max(slots) * settings.burst_share, average * settings.burst_share, floor
    )


def quiet_rate(hourly: list[int], recorded: list[bool], settings: Settings = Settings()) -> float | None:
    """Return the hourly rate a typical recorded week predicts for the next hour, or None.

    The median over the recorded weeks of the same weekday hours (± 1): unlike a mean, it
    does not take one storm week among three for the usual level.
    """
    weeks = _weeks_back(len(hourly), recorded, settings)
    if weeks is None:
        return None
    per_week = [_same_hours(hourly, week) for week in weeks]
    typical = statistics.median(sum(slots) / len(slots) for slots in per_week)
    return max(typical, settings.prior_events / settings.prior_hours)


def detect(
    recent: dict[str, list[int]],
    history: dict[str, list[int]],
    window_start: datetime,
    bucket: timedelta,
    zips: dict[str, dict[str, int]] | None = None,
    settings: Settings = Settings(),
    recorded: list[bool] | None = None,
    hazards: dict[str, list[str]] | None = None,
) -> list[Spike]:
    """Return the spikes, strongest first.

    Args:
        recent: category -> counts per bucket over the window, oldest first.
        history: category -> counts per hour before the window, oldest first (whole days;
            whole weeks for the same-weekday view); for a hazard's categories, also those
            with nothing in the window.
        window_start: when the first recent bucket starts.
        zips: category -> zip -> count over the window (for naming the area).
        recorded: for each week back (1, 2, …), whether the console was running then.
        hazards: hazard -> the categories that answer it (counted together).
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
        area = _area((zips or {}).get(category, {}), observed, settings)
        spikes.append(
            Spike(
                category,
                observed,
                expected,
                _since(counts, expected, window_start, bucket, settings),
                score,
                area,
            )
        )
    flagged = {spike.category for spike in spikes}
    for hazard, members in sorted((hazards or {}).items()):
        if not flagged.intersection(members):
            spike = _hazard_spike(
                hazard, members, recent, history, window_start, bucket, zips or {}, settings, recorded or []
            )
            if spike:
                spikes.append(spike)
    return sorted(spikes, key=lambda s: s.score, reverse=True)


def _hazard_spike(
    hazard: str,
    members: list[str],
    recent: dict[str, list[int]],
    history: dict[str, list[int]],
    window_start: datetime,
    bucket: timedelta,
    zips: dict[str, dict[str, int]],
    settings: Settings,
    recorded: list[bool],
) -> Spike | None:
    """Return the spike of a hazard's categories counted together, or None."""
    present = sorted((m for m in members if sum(recent.get(m, ())) > 0), key=lambda m: -sum(recent[m]))
    if len(present) < 2:  # one category alone is the per-category view's business
        return None
    counts = [sum(column) for column in zip(*(recent[m] for m in present), strict=True)]
    observed = sum(counts)
    if observed < settings.min_count:
        return None
    length = max(len(history.get(m, ())) for m in members)
    hourly = [0] * length
    for member in members:
        past = history.get(member, ())
        for i, n in enumerate(past, start=length - len(past)):
            hourly[i] += n
    rate = quiet_rate(hourly, recorded, settings)
    if rate is None:
        return None
    expected = rate * len(counts) * bucket / timedelta(hours=1)
    score = poisson_tail_score(observed, expected)
    if observed < settings.min_ratio * expected or score < settings.hazard_min_score:
        return None
    pooled: dict[str, int] = {}
    for member in present:
        for zip_code, n in zips.get(member, {}).items():
            pooled[zip_code] = pooled.get(zip_code, 0) + n
    since = _since(counts, expected, window_start, bucket, settings)
    area = _area(pooled, observed, settings)
    return Spike(present[0], observed, expected, since, score, area, hazard, tuple(present))


def _since(
    counts: list[int], expected: float, window_start: datetime, bucket: timedelta, settings: Settings
) -> datetime:
    """Return when the surge began: the first bucket well above its share of the expectation."""
    per_bucket = expected / len(counts)
    first = next((i for i, n in enumerate(counts) if n > 0 and n >= settings.min_ratio * per_bucket), 0)
    return window_start + first * bucket


def _area(by_zip: dict[str, int], observed: int, settings: Settings) -> str | None:
    """Return the ZIP code most of the count comes from, if one does."""
    area = None
    for zip_code, count in by_zip.items():
        if count >= settings.min_count and count >= settings.area_share * observed:
            area = zip_code
    return area
