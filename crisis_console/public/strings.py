"""The public page's own words (its chrome), per language; script text comes from the scripts.

A language without a table here gets the English chrome around its scripts (each script
carries its own ``lang``), so adding a language is adding a table, nothing else.
"""

from __future__ import annotations

from typing import Any

DEFAULT = "en"

STRINGS: dict[str, dict[str, Any]] = {
    "en": {
        "brand": "311 emergency information",
        "title": "Emergency information",
        "skip": "Skip to content",
        "language": "Language",
        "last_updated": "Last updated",
        "call_911": "In a life-threatening emergency, call 911.",
        "call_311": "For questions and city services, call 311.",
        "none_title": "No emergency is declared right now",
        "none_text": (
            "There is no active emergency in our area. Official information will appear on this "
            "page as soon as one is declared."
        ),
        "where_help": "Where to get help",
        "exercise": "EXERCISE",
        "exercise_text": "This is a drill, not a real emergency.",
        "key_messages": "What you need to know",
        "details": "Details",
        "areas": "Areas affected",
        "hotline": "Information line",
        "website": "Website",
        "shelters": "Shelters and centers",
        "declared": "Declared",
        "severity": "Severity",
        "event_link": "Only this emergency",
        "all_link": "All current emergencies",
        "gone_title": "This emergency is not active",
        "gone_text": (
            "The page you followed is for an emergency that has ended or is not published. "
            "Current information follows."
        ),
        "unavailable_title": "Information is temporarily unavailable",
        "unavailable_text": "Please try again in a few minutes.",
        "json_link": "This information as data (JSON)",
        "original_language": "Not yet available in this language; shown as published.",
        "hazards": {
            "boil_water": "Boil-water advisory",
            "extreme_heat": "Extreme heat",
            "flood": "Flood",
            "hurricane": "Hurricane",
            "power_outage": "Power outage",
            "winter_storm": "Winter storm",
            "other": "Emergency",
        },
        "severities": {"minor": "Minor", "moderate": "Moderate", "severe": "Severe", "extreme": "Extreme"},
    },
    "es": {
        "brand": "Información de emergencia del 311",
        "title": "Información de emergencia",
        "skip": "Saltar al contenido",
        "language": "Idioma",
        "last_updated": "Última actualización",
        "call_911": "En una emergencia que ponga en peligro la vida, llame al 911.",
        "call_311": "Para preguntas y servicios de la ciudad, llame al 311.",
        "none_title": "No hay ninguna emergencia declarada en este momento",
        "none_text": (
            "No hay ninguna emergencia activa en nuestra zona. La información oficial aparecerá "
            "en esta página en cuanto se declare una."
        ),
        "where_help": "Dónde obtener ayuda",
        "exercise": "SIMULACRO",
        "exercise_text": "Esto es un simulacro, no una emergencia real.",
        "key_messages": "Lo que necesita saber",
        "details": "Detalles",
        "areas": "Zonas afectadas",
        "hotline": "Línea de información",
        "website": "Sitio web",
        "shelters": "Refugios y centros",
        "declared": "Declarada",
        "severity": "Gravedad",
        "event_link": "Solo esta emergencia",
        "all_link": "Todas las emergencias actuales",
        "gone_title": "Esta emergencia no está activa",
        "gone_text": (
            "La página que siguió es de una emergencia que terminó o que no está publicada. "
            "A continuación, la información actual."
        ),
        "unavailable_title": "La información no está disponible por el momento",
        "unavailable_text": "Vuelva a intentarlo en unos minutos.",
        "json_link": "Esta información como datos (JSON)",
        "original_language": "Aún no disponible en español; se muestra como se publicó.",
        "hazards": {
            "boil_water": "Aviso de hervir el agua",
            "extreme_heat": "Calor extremo",
            "flood": "Inundación",
            "hurricane": "Huracán",
            "power_outage": "Apagón",
            "winter_storm": "Tormenta invernal",
            "other": "Emergencia",
        },
        "severities": {"minor": "Menor", "moderate": "Moderada", "severe": "Grave", "extreme": "Extrema"},
    },
}


def strings(language: str) -> dict[str, Any]:
    """Return the chrome of ``language``, English where it has no table."""
    return STRINGS.get(language, STRINGS[DEFAULT])


def chrome_language(language: str) -> str:
    """Return the language the chrome is actually written in for ``language``."""
    return language if language in STRINGS else DEFAULT
