"""What a resident's text asks for: a keyword (STOP, HELP, INFO…) or a report, and in which language.

Pure functions, no I/O. A keyword counts only when it is the whole text (case, accents,
surrounding spaces and closing punctuation aside), as carriers match them: "STOP" opts
out, "Please stop the snow plow at 5 Elm St" is a report.
"""

from __future__ import annotations

import re
import unicodedata
from enum import Enum


class Keyword(Enum):
    """What a one-word text asks for."""

    STOP = "stop"
    START = "start"
    HELP = "help"
    INFO = "info"
    SPANISH = "es"
    ENGLISH = "en"


#: The carriers' opt-out and opt-in words (CTIA; what Twilio's opt-out handling recognises).
OPT_OUT = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT")
OPT_IN = ("START", "UNSTOP", "YES")
#: Spanish opt-out words: a resident who writes in Spanish is opted out too (the console
#: stops its own texts; the reply says so in Spanish). The carriers' words still work.
OPT_OUT_SPANISH = ("PARAR", "PARA", "ALTO", "BAJA", "CANCELAR", "DETENER", "NO MAS")

#: Keyword -> (the language the word itself is in, or None), by the word as matched.
_WORDS: dict[str, tuple[Keyword, str | None]] = {
    **{word: (Keyword.STOP, None) for word in OPT_OUT},
    **{word: (Keyword.START, None) for word in OPT_IN},
    **{word: (Keyword.STOP, "es") for word in OPT_OUT_SPANISH},
    "HELP": (Keyword.HELP, "en"),
    "INFO": (Keyword.INFO, None),
    "AYUDA": (Keyword.INFO, "es"),
    "ES": (Keyword.SPANISH, "es"),
    "ESPANOL": (Keyword.SPANISH, "es"),
    "EN": (Keyword.ENGLISH, "en"),
    "ENGLISH": (Keyword.ENGLISH, "en"),
    "INGLES": (Keyword.ENGLISH, "en"),
}


def _fold(text: str) -> str:
    """Return ``text`` upper-cased without accents (ESPAÑOL → ESPANOL)."""
    bare = unicodedata.normalize("NFKD", text)
    return "".join(c for c in bare if not unicodedata.combining(c)).upper()


def keyword(body: str) -> tuple[Keyword, str | None] | None:
    """Return (keyword, the language it was written in, if it tells) when the whole text is
    one keyword, else None (the text is a report)."""
    word = _fold(body).strip().strip(".!¡¿?\"'")
    return _WORDS.get(word.strip())


_SPANISH = """
    el la los las del de que en y es esta estan hay mi mis su sus una uno unos unas por para
    sin desde hace hacen muy pero porque tambien aqui cuando donde como cual quien hola
    gracias ayuda necesito necesitamos tengo tenemos tiene tienen estoy estamos soy somos calle
    calles casa luz agua nieve frio calefaccion arbol arboles basura apagon inundacion favor
    senor senora buenas buenos dias noche vecino vecinos edificio carro coche nevada tormenta
    corriente electricidad caido caida roto rota sucio esquina barrio ya nada todo toda
"""
_ENGLISH = """
    the is are my our and of in on at to from have has there here since not no it this that
    we they please help street road tree power heat snow water light out down for with been
    house home apartment building car since days hours still outside near
"""
#: Common Spanish words that are not also everyday English ("no", "a", "me" are both).
SPANISH_WORDS = frozenset(_SPANISH.split())
#: Common English words, so a text mixing both leans to the one it uses more.
ENGLISH_WORDS = frozenset(_ENGLISH.split())
#: Letters and marks only Spanish (of the two) writes.
SPANISH_MARKS = re.compile("[ñÑ¿¡áíóúÁÍÓÚ]")
_WORD = re.compile(r"[^\W\d_]+")


def is_spanish(text: str) -> bool:
    """Return whether a report reads as Spanish rather than English.

    Counts common Spanish and English words (accents folded, so "esta" and "está" count
    alike): Spanish when it has at least two Spanish words and more Spanish than English
    ones, or a Spanish-only mark (ñ ¿ ¡ á í ó ú) and at least one Spanish word and no fewer
    Spanish than English words. Category
    names and ZIP codes count for neither.
    """
    words = [_fold(w).lower() for w in _WORD.findall(text)]
    spanish = sum(w in SPANISH_WORDS for w in words)
    english = sum(w in ENGLISH_WORDS for w in words)
    if SPANISH_MARKS.search(text) and spanish >= 1 and spanish >= english:
        return True
    return spanish >= 2 and spanish > english
