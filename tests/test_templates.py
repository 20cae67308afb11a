"""The hazard template library and its filling, without I/O beyond reading the files."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts_library.templates import (
    HAZARDS,
    LANGUAGES,
    TemplateError,
    fill,
    load_templates,
    parse_template,
    placeholders_in,
    unfilled,
)


def test_every_hazard_ships_in_english_and_spanish():
    """Six hazards × two languages, all loading cleanly."""
    keys = {t.key for t in load_templates()}
    assert keys == {f"{h}.{lang}" for h in HAZARDS for lang in LANGUAGES}


def test_translations_share_categories_and_placeholders():
    """The Spanish version of a template answers the same categories with the same placeholders."""
    by_key = {t.key: t for t in load_templates()}
    for hazard in HAZARDS:
        english, spanish = by_key[f"{hazard}.en"], by_key[f"{hazard}.es"]
        assert english.categories == spanish.categories
        assert set(english.placeholders) == set(spanish.placeholders)
        assert english.topic == spanish.topic


def test_fill_leaves_unknown_placeholders_and_inserts_values_literally():
    """Filling is partial and never re-expands a value."""
    text = "Call {{ hotline }} about {{event_name}}; shelters: {{ shelter_list }}"
    filled = fill(text, {"hotline": "311", "event_name": "{{ hotline }} storm", "shelter_list": ""})
    assert filled == "Call 311 about {{ hotline }} storm; shelters: {{ shelter_list }}"
    assert unfilled("no placeholders") == []
    assert placeholders_in("{{ a }} {{ b }} {{ a }}") == ["a", "b"]


VALID = '+++\nhazard = "flood"\nlanguage = "en"\ntitle = "{{ event_name }}"\ntopic = "Safety"\ncategories = []\n[placeholders]\nevent_name = "x"\n+++\nBody\n'


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        ("no front matter", "flood.en.md", "front matter"),
        ("+++\nhazard = \n+++\nbody", "flood.en.md", "not valid TOML"),
        (VALID.replace('hazard = "flood"', 'hazard = "volcano"'), "flood.en.md", "volcano"),
        (VALID, "flood.es.md", "does not match"),
        (VALID.replace("Body", "Body {{ hotline }}"), "flood.en.md", "hotline"),
        (VALID.replace('event_name = "x"', 'event_name = "x"\nunused = "y"'), "flood.en.md", "never used"),
        (VALID.replace("categories = []\n", ""), "flood.en.md", "categories"),
    ],
)
def test_parse_errors_name_the_file_and_the_problem(text, name, message):
    """A broken template is refused with its file name and the reason."""
    with pytest.raises(TemplateError) as caught:
        parse_template(text, Path(name))
    assert name in str(caught.value) and message in str(caught.value)
