"""The console's hazard kinds in CAP's vocabulary, both ways.

Out: a kind becomes CAP categories and ``event`` text. In: a CAP alert's event codes
(SAME/NWS three-letter codes, VTEC phenomena) and then its ``event`` and ``headline``
words find the kind whose templates answer it. Pure Python: no Flask, no Redis.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: kind -> CAP categories (first is the main one) and CAP ``event`` text.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "boil_water": ("Health", "Infra"),
    "extreme_heat": ("Met", "Health"),
    "flood": ("Met",),
    "hurricane": ("Met",),
    "power_outage": ("Infra",),
    "winter_storm": ("Met",),
    "other": ("Other",),
}
EVENT_TEXT: dict[str, str] = {
    "boil_water": "Boil Water Advisory",
    "extreme_heat": "Extreme Heat",
    "flood": "Flood",
    "hurricane": "Hurricane",
    "power_outage": "Power Outage",
    "winter_storm": "Winter Storm",
    "other": "Emergency",
}

#: Console severity -> CAP severity, and back (CAP "Unknown" has no console twin).
SEVERITY_TO_CAP = {"minor": "Minor", "moderate": "Moderate", "severe": "Severe", "extreme": "Extreme"}
SEVERITY_FROM_CAP = {cap: ours for ours, cap in SEVERITY_TO_CAP.items()}

#: SAME / NWS event codes (EAS and the NWS CAP feed) -> kind.
EVENT_CODES: dict[str, str] = {
    # winter
    "WSW": "winter_storm",  # winter storm warning
    "WSA": "winter_storm",  # winter storm watch
    "BZW": "winter_storm",  # blizzard warning
    "BZA": "winter_storm",
    "ISW": "winter_storm",  # ice storm warning
    "WWY": "winter_storm",  # winter weather advisory
    "ECW": "winter_storm",  # extreme cold warning
    "ECA": "winter_storm",
    "WCW": "winter_storm",  # wind chill warning
    "LEW": "winter_storm",  # lake effect snow warning
    # flood, surge, tsunami
    "FFW": "flood",  # flash flood warning
    "FFA": "flood",  # flash flood watch
    "FFS": "flood",  # flash flood statement
    "FLW": "flood",  # flood warning
    "FLA": "flood",  # flood watch
    "FLS": "flood",  # flood statement
    "FLY": "flood",  # flood advisory
    "CFW": "flood",  # coastal flood warning
    "CFA": "flood",  # coastal flood watch
    "SSW": "flood",  # storm surge warning
    "SSA": "flood",  # storm surge watch
    "TSW": "flood",  # tsunami warning
    "TSA": "flood",  # tsunami watch
    "DBW": "flood",  # dam/levee break warning
    "DBA": "flood",
    # tropical
    "HUW": "hurricane",  # hurricane warning
    "HUA": "hurricane",  # hurricane watch
    "HLS": "hurricane",  # hurricane local statement
    "TRW": "hurricane",  # tropical storm warning
    "TRA": "hurricane",  # tropical storm watch
    "EWW": "hurricane",  # extreme wind warning (a hurricane's eyewall)
    # heat
    "EHW": "extreme_heat",  # excessive heat warning
    "EHA": "extreme_heat",  # excessive heat watch
    "HTY": "extreme_heat",  # heat advisory
    "XHW": "extreme_heat",  # extreme heat warning
    "XHA": "extreme_heat",
    # utilities
    "POS": "power_outage",  # power outage advisory
}

#: VTEC phenomena (``/O.NEW.KBOX.WS.W.0003.../``) -> kind.
VTEC_PHENOMENA: dict[str, str] = {
    **dict.fromkeys(("WS", "BZ", "IS", "LE", "WW", "WC", "EC", "ZR"), "winter_storm"),
    **dict.fromkeys(("FF", "FL", "FA", "CF", "SS", "TS"), "flood"),
    **dict.fromkeys(("HU", "TR", "TY", "EW"), "hurricane"),
    **dict.fromkeys(("EH", "HT", "XH"), "extreme_heat"),
}
VTEC_RE = re.compile(r"\.([A-Z]{2})\.[WAYS]\.\d{4}\.")

#: Words in ``event`` or ``headline`` -> kind, tried in this order (a "hurricane flood
#: warning" is a hurricane; "boil water" before "water").
KEYWORDS: tuple[tuple[str, str], ...] = (
    (r"boil[- ]water|drinking water|water (?:quality|contamination)|boil order", "boil_water"),
    (r"hurricane|tropical (?:storm|cyclone|depression)|typhoon|cyclone|eyewall", "hurricane"),
    (r"blizzard|winter|snow|ice storm|freezing|sleet|wind chill|extreme cold", "winter_storm"),
    (r"heat\b|heatwave", "extreme_heat"),
    (r"flood|storm surge|tsunami|inundation|dam (?:break|failure)|levee", "flood"),
    (r"power outage|outage|blackout|electric|power failure", "power_outage"),
)


def hazard_for(
    *,
    event: str,
    headline: str = "",
    event_codes: Iterable[tuple[str, str]] = (),
    parameters: Iterable[tuple[str, str]] = (),
) -> tuple[str, str]:
    """Return ``(kind, why)`` for an alert's info: codes first, then words, else "other"."""
    for name, value in event_codes:
        code = value.strip().upper()
        if code in EVENT_CODES:
            return EVENT_CODES[code], f"event code {name.strip() or 'code'} {code}"
    for name, value in parameters:
        if name.strip().upper() == "VTEC":
            for phenomenon in VTEC_RE.findall(value):
                if phenomenon in VTEC_PHENOMENA:
                    return VTEC_PHENOMENA[phenomenon], f"VTEC phenomenon {phenomenon}"
    for label, text in (("event", event), ("headline", headline)):
        for pattern, kind in KEYWORDS:
            match = re.search(rf"\b(?:{pattern})", text, re.IGNORECASE)
            if match:
                return kind, f"{label} {text.strip()!r} mentions {match.group(0).lower()!r}"
    return "other", f"no hazard template matches event {event.strip()!r}"
