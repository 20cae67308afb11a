"""Languages scripts are written in: each one's name in itself, for agents choosing theirs."""

from __future__ import annotations

#: Code -> (the language's own name, the link that switches a card to it).
LANGUAGES: dict[str, tuple[str, str]] = {
    "en": ("English", "In English"),
    "es": ("Español", "En español"),
    "zh": ("中文", "中文版"),
    "vi": ("Tiếng Việt", "Bằng tiếng Việt"),
    "ht": ("Kreyòl ayisyen", "An kreyòl"),
    "pt": ("Português", "Em português"),
    "fr": ("Français", "En français"),
    "ru": ("Русский", "На русском"),
    "ar": ("العربية", "بالعربية"),
    "so": ("Soomaali", "Af-Soomaali"),
    "ko": ("한국어", "한국어로"),
    "tl": ("Tagalog", "Sa Tagalog"),
}

DEFAULT = "en"


def name(code: str) -> str:
    """Return a language's own name, or its code when it is not in the list."""
    return LANGUAGES.get(code, (code, code))[0]


def link_text(code: str) -> str:
    """Return the text of the link that shows a script in this language ("En español")."""
    return LANGUAGES.get(code, (code, code))[1]


def choices(extra: set[str] | frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """Return (code, own name) of the listed languages and any ``extra`` codes, listed first."""
    codes = list(LANGUAGES) + sorted(code for code in extra if code not in LANGUAGES)
    return [(code, name(code)) for code in codes]
