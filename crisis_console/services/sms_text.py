"""SMS text arithmetic: GSM-7 or UCS-2, how many segments, and fitting a reply in two.

Pure functions, no I/O. A text goes out in GSM-7 (7-bit septets, 160 per single SMS, 153
per segment of a longer one; the extension characters ``^ { } \\ [ ~ ] | €`` and form feed
take two septets, an escape and the character) when every character is in the GSM 03.38
basic set or its extension table; otherwise in UCS-2 (70 UTF-16 code units single, 67 per
segment; a character outside the Basic Multilingual Plane takes two units). Segments are
counted the way a handset splits them: an escaped pair or a surrogate pair is never split
across two segments, so a segment may hold one unit less than its nominal size.

:func:`fit_reply` keeps a reply within :data:`MAX_SEGMENTS` segments.

Spanish, and accents generally: GSM-7 already carries é, ñ, ü, ¿ and ¡, but not á, í, ó
or ú, so one "está" turns a whole reply into UCS-2 and halves its room (306 → 134
characters in two segments), which would leave a Spanish texter a key message cut to a
few words. The fitter therefore keeps the text exactly as written while it fits, and only
when it would otherwise be cut does it transliterate to GSM-7 (á → a, smart quotes and
dashes → ASCII, … → ...) and shorten that, if still needed. A resident reads "esta" for
"está" without trouble; a key message cut in half loses the instruction. Text that cannot
become GSM-7 (Chinese, say) stays UCS-2 and is shortened there.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

#: GSM 03.38 basic character set (one septet each); the escape (0x1B) is not a character.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table: an escape plus the character, two septets each.
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7 = "GSM-7"
UCS2 = "UCS-2"
#: (units in a single SMS, units per segment of a concatenated one), by encoding.
LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}
MAX_SEGMENTS = 2

#: Characters outside GSM-7 with a plain GSM-7 stand-in (what phones' "smart" keyboards add).
_PLAIN = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u2032": "'",
    "\u00b4": "'",
    "`": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u2033": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2012": "-",
    "\u2212": "-",
    "\u2010": "-",
    "\u2011": "-",
    "\u2026": "...",
    "\u2022": "-",
    "\u00b7": "-",
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\t": " ",
    "\u00ba": "o",
    "\u00aa": "a",
}


def is_gsm7(text: str) -> bool:
    """Return whether every character of ``text`` can be sent in GSM-7."""
    return all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text)


def encoding(text: str) -> str:
    """Return the encoding ``text`` goes out in: ``"GSM-7"`` or ``"UCS-2"``."""
    return GSM7 if is_gsm7(text) else UCS2


def _units(text: str, how: str) -> list[int]:
    """Return the units each character takes: septets (GSM-7) or UTF-16 code units (UCS-2)."""
    if how == GSM7:
        return [2 if ch in GSM_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def length(text: str) -> int:
    """Return the length of ``text`` in its encoding's units (septets or UTF-16 code units)."""
    return sum(_units(text, encoding(text)))


def segments(text: str) -> int:
    """Return how many SMS segments ``text`` is sent as (0 for the empty text)."""
    how = encoding(text)
    units = _units(text, how)
    single, per_segment = LIMITS[how]
    if sum(units) <= single:
        return 1 if units else 0
    count, used = 1, 0
    for size in units:
        # A two-unit character (escape pair, surrogate pair) never straddles two segments.
        if used + size > per_segment:
            count, used = count + 1, 0
        used += size
    return count


def fits(text: str, max_segments: int = MAX_SEGMENTS) -> bool:
    """Return whether ``text`` goes out in at most ``max_segments`` segments."""
    return segments(text) <= max_segments


def to_gsm7(text: str) -> str:
    """Return ``text`` with each character GSM-7 lacks replaced by a plain stand-in where one
    exists (á → a, ’ → ', — → -, … → ...); characters with none (中) are kept as they are."""
    out = []
    for ch in text:
        if ch in GSM_BASIC or ch in GSM_EXTENSION:
            out.append(ch)
        elif ch in _PLAIN:
            out.append(_PLAIN[ch])
        else:
            bare = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            out.append(bare if bare and is_gsm7(bare) else ch)
    return "".join(out)


class DoesNotFit(ValueError):
    """The parts that may not be shortened (reference, footer) are too long by themselves."""


@dataclass(frozen=True)
class Fitted:
    """A reply fitted into its segments, and what fitting did to it."""

    text: str
    encoding: str
    segments: int
    #: The key message was cut (at a word, with an ellipsis) or left out.
    shortened: bool
    #: Characters GSM-7 lacks were replaced by plain ones to make room.
    transliterated: bool


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _shorten(head: str, key: str, tail: str, max_segments: int) -> str | None:
    """Return the longest word-boundary cut of ``key`` (with an ellipsis) that fits, or None."""
    # "…" is not GSM-7: in a GSM-7 reply it would switch the whole text to UCS-2.
    ellipsis = "..." if is_gsm7(_join(head, key, tail)) else "…"
    words = key.split()
    # The longer the cut, the longer the reply: binary search the number of words kept.
    low, high, best = 1, len(words) - 1, None
    while low <= high:
        middle = (low + high) // 2
        cut = " ".join(words[:middle]).rstrip(" ,;:-") + ellipsis
        if fits(_join(head, cut, tail), max_segments):
            best, low = cut, middle + 1
        else:
            high = middle - 1
    if best is None and words:
        # Not even the first word fits whole: cut inside it (a very long word, or a tiny room).
        first = words[0]
        for end in range(len(first) - 1, 0, -1):
            cut = first[:end] + ellipsis
            if fits(_join(head, cut, tail), max_segments):
                return cut
    return best


def fit_reply(head: str, key: str, tail: str, max_segments: int = MAX_SEGMENTS) -> Fitted:
    """Return ``head key tail`` (joined by spaces) within ``max_segments`` SMS segments.

    ``head`` (the reference number) and ``tail`` (the 911 footer) are never cut. When the
    whole is too long as written, it is transliterated to GSM-7 if that alone makes it fit;
    otherwise ``key`` (the key message) is shortened at a word boundary with an ellipsis,
    as written or transliterated, whichever keeps more of it (as written on a tie), and left
    out only when not a word of it fits. See the module's docstring for why.

    Raises:
        DoesNotFit: ``head`` and ``tail`` alone take more than ``max_segments`` segments.
    """
    key = " ".join(key.split())
    variants = [(head, key, tail, False)]
    plain = (to_gsm7(head), to_gsm7(key), to_gsm7(tail))
    if is_gsm7(_join(*plain)) and plain != (head, key, tail):
        variants.append((*plain, True))
    for h, k, t, transliterated in variants:
        whole = _join(h, k, t)
        if fits(whole, max_segments):
            return Fitted(whole, encoding(whole), segments(whole), False, transliterated)
    best: tuple[int, Fitted] | None = None
    for h, k, t, transliterated in variants:
        cut = _shorten(h, k, t, max_segments) if k else None
        text = _join(h, cut or "", t)
        if not fits(text, max_segments):
            continue
        kept = len((cut or "").rstrip(".…"))
        if best is None or kept > best[0]:
            best = (kept, Fitted(text, encoding(text), segments(text), True, transliterated))
    if best is None:
        raise DoesNotFit(f"the fixed parts of the reply take {segments(_join(head, tail))} segments")
    return best[1]
