"""The hazard template library: the shipped files, the parser's checks and filling."""

from __future__ import annotations

import re
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from scripts_library.templates import (
    HAZARDS,
    LANGUAGES,
    MAX_SUMMARY,
    PLACEHOLDER_RE,
    TEMPLATES_DIR,
    TOPICS,
    Template,
    TemplateError,
    fill,
    load_templates,
    parse_template,
    placeholders_in,
    render_template,
    unfilled,
)

SHIPPED = load_templates()
BY_KEY = {t.key: t for t in SHIPPED}

#: Placeholders shared across hazards, so that one event's details can fill them all.
COMMON = {"event_name", "hotline", "website", "shelter_list", "areas"}
#: The few hazard-specific ones.
SPECIFIC = {
    "boil_water": {"water_distribution_sites"},
    "extreme_heat": set(),
    "flood": set(),
    "hurricane": {"evacuation_zones"},
    "power_outage": {"utility_name", "utility_outage_line"},
    "winter_storm": {"parking_ban_rules"},
}
#: The public body's first and last headings, then the agent notes' headings, in order.
HEADINGS = {
    "en": (["## What you need to know", "## More information"], ["## If the caller…", "## Do not say / do not promise"]),
    "es": (["## Lo que debe saber", "## Más información"], ["## Si la persona…", "## No diga / no prometa"]),
}  # fmt: skip
EVENT_VALUES = {
    "event_name": "Winter Storm — Level 2",
    "hotline": "311",
    "website": "https://city.example/storm",
    "shelter_list": "- Main Library, 700 Boylston St, open 24 hours",
    "areas": "Dorchester, Roxbury",
    "water_distribution_sites": "- City Hall Plaza, 8 am – 8 pm",
    "evacuation_zones": "Zones A and B, from 6 pm today",
    "utility_name": "Eversource",
    "utility_outage_line": "1-800-592-2000",
    "parking_ban_rules": "Move cars off marked snow routes by 6 pm.",
}


def words(text: str) -> int:
    """Count the words a call-taker would read (placeholders count as one)."""
    return sum(1 for token in PLACEHOLDER_RE.sub("X", text).split() if re.search(r"\w", token))


# --- the shipped library -----------------------------------------------------------------------


def test_every_hazard_ships_in_english_and_spanish():
    """Six hazards × two languages, all loading cleanly, in (hazard, language) order."""
    assert HAZARDS == ("boil_water", "extreme_heat", "flood", "hurricane", "power_outage", "winter_storm")
    assert LANGUAGES == ("en", "es")
    assert [t.key for t in SHIPPED] == [f"{h}.{lang}" for h in HAZARDS for lang in LANGUAGES]
    assert sorted(p.name for p in TEMPLATES_DIR.glob("*.md")) == sorted(f"{t.key}.md" for t in SHIPPED)
    assert all(t.path.parent == TEMPLATES_DIR for t in SHIPPED)


@pytest.mark.parametrize("key", sorted(BY_KEY))
def test_shipped_template_follows_the_house_style(key):
    """Each script is short, headed the same way, free of raw HTML and points to 911; what the
    public may read (summary, body) is apart from the agents' notes."""
    template = BY_KEY[key]
    assert template.topic in TOPICS
    assert template.categories and all(re.fullmatch(r"[a-z][a-z0-9_]*", c) for c in template.categories)
    assert "event_name" in placeholders_in(template.title)
    assert all(description.strip() for description in template.placeholders.values())
    assert 90 <= words(template.body) <= 300, words(template.body)
    assert 40 <= words(template.agent_notes) <= 250, words(template.agent_notes)
    public, internal = HEADINGS[template.language]
    for text, headings in ((template.body, public), (template.agent_notes, internal)):
        positions = [text.find(heading) for heading in headings]
        assert -1 not in positions and positions == sorted(positions), positions
    for heading in internal:
        assert heading not in template.body, "internal guidance stays out of the public body"
    for text in (template.body, template.agent_notes):
        assert not re.search(r"<[A-Za-z/!]", text), "no raw HTML in a script"
        assert "**911**" in text
        assert "{{" not in PLACEHOLDER_RE.sub("", text)
    assert "{{" not in PLACEHOLDER_RE.sub("", template.title + template.summary)
    assert "911" in template.summary or template.hazard in ("winter_storm", "boil_water")
    assert "\n" not in template.summary and "**" not in template.summary, "the summary is plain text"
    filled = fill(template.summary, EVENT_VALUES)
    assert len(filled) <= MAX_SUMMARY and "{{" not in filled


@pytest.mark.parametrize("hazard", HAZARDS)
def test_translations_share_categories_placeholders_and_topic(hazard):
    """The Spanish version answers the same categories, with the same placeholders, under the same topic."""
    english, spanish = BY_KEY[f"{hazard}.en"], BY_KEY[f"{hazard}.es"]
    assert english.categories == spanish.categories
    assert list(english.placeholders) == list(spanish.placeholders)
    for part in ("summary", "body", "agent_notes"):
        assert placeholders_in(getattr(english, part)) == placeholders_in(getattr(spanish, part)), part
    assert english.topic == spanish.topic


@pytest.mark.parametrize("hazard", HAZARDS)
def test_placeholders_come_from_a_small_shared_set(hazard):
    """One event's details fill every template: common names, plus few hazard-specific ones."""
    for language in LANGUAGES:
        template = BY_KEY[f"{hazard}.{language}"]
        names = set(template.placeholders)
        assert {"event_name", "hotline"} <= names
        assert SPECIFIC[hazard] <= names
        assert names <= COMMON | SPECIFIC[hazard]


def test_spanish_templates_are_spanish():
    """The Spanish files are written in Spanish, not left in English."""
    for hazard in HAZARDS:
        spanish = BY_KEY[f"{hazard}.es"]
        for text in (spanish.summary, spanish.body, spanish.agent_notes):
            assert "What you" not in text and "Do not" not in text and "If the" not in text
        assert re.search(r"[áéíóúñ¿]", spanish.body) and re.search(r"[áéíóúñ¿]", spanish.agent_notes)
        assert " llame al **911**" in spanish.agent_notes and "911" in spanish.summary + spanish.body


@pytest.mark.parametrize("key", sorted(BY_KEY))
def test_rendering_with_every_value_leaves_nothing_unfilled(key):
    """An event that knows every detail produces a finished title and body."""
    texts = render_template(BY_KEY[key], EVENT_VALUES)
    assert all(unfilled(text) == [] for text in texts.values())
    assert texts["title"].startswith("Winter Storm — Level 2")
    assert texts["summary"].startswith("Winter Storm — Level 2")
    assert "311" in texts["body"]


def test_rendering_only_the_event_details_leaves_the_rest_for_a_person():
    """Details the event lacks stay visible as placeholders, so that submission is blocked."""
    template = BY_KEY["power_outage.es"]
    texts = render_template(template, {"event_name": "Apagón", "areas": "Centro", "hotline": "311"})
    assert texts["title"].startswith("Apagón:")
    assert unfilled(texts["body"]) == ["utility_name", "utility_outage_line", "shelter_list"]
    assert unfilled(texts["summary"]) == ["utility_name", "utility_outage_line"]
    assert "{{ utility_name }}" in texts["body"]
    assert template.body == BY_KEY["power_outage.es"].body  # the template itself is unchanged


# --- filling -----------------------------------------------------------------------------------


def test_placeholders_in_lists_each_name_once_in_order():
    """Names appear once, in order of first appearance; spacing inside braces does not matter."""
    assert placeholders_in("{{ b }} {{a}} {{  b  }} {{ a }}") == ["b", "a"]
    assert placeholders_in("{{ Not_Valid }} {{ x-y }} { z } {{}}") == []
    assert placeholders_in("") == []


def test_fill_partial_leaves_the_others_untouched():
    """Only placeholders with a value are replaced; the others keep (normalised) braces."""
    text = "Call {{ hotline }} about {{event_name}}; shelters: {{  shelter_list }}; see {{ website }}"
    filled = fill(text, {"hotline": "311", "website": ""})
    assert filled == "Call 311 about {{ event_name }}; shelters: {{ shelter_list }}; see {{ website }}"
    assert unfilled(filled) == ["event_name", "shelter_list", "website"]


def test_fill_treats_empty_and_blank_values_as_missing():
    """Empty or whitespace-only values do not erase a placeholder."""
    assert fill("{{ a }}|{{ b }}|{{ c }}", {"a": "", "b": "   ", "c": "x"}) == "{{ a }}|{{ b }}|x"


def test_fill_inserts_values_literally_without_re_expanding_them():
    """A value containing braces, backslashes or group references is inserted as written."""
    values = {"event_name": "{{ hotline }} storm", "hotline": "311", "areas": r"C:\new \1 \g<0>"}
    filled = fill("{{ event_name }} / {{ hotline }} / {{ areas }}", values)
    assert filled == r"{{ hotline }} storm / 311 / C:\new \1 \g<0>"
    assert unfilled(filled) == ["hotline"]  # the value's braces are text a person must fix
    assert fill(filled, {}) == filled


def test_fill_keeps_multiline_markdown_values():
    """Lists (shelters, sites) are inserted as Markdown, line breaks and all."""
    sites = "- Library, 700 Main St\n- High School, 12 Oak Ave"
    assert fill("## Shelters\n\n{{ shelter_list }}\n", {"shelter_list": sites}) == f"## Shelters\n\n{sites}\n"


def test_unfilled_reports_nothing_for_plain_text():
    """Text without placeholders has nothing left to fill."""
    assert unfilled("no placeholders, just {single} braces") == []


def test_template_is_immutable_and_keyed_by_hazard_and_language():
    """A template cannot be changed by accident, and its key names hazard and language."""
    template = BY_KEY["winter_storm.es"]
    assert template.key == "winter_storm.es"
    assert isinstance(template, Template)
    with pytest.raises(FrozenInstanceError):
        template.title = "changed"  # type: ignore[misc]


# --- parsing errors ----------------------------------------------------------------------------

VALID = """+++
hazard = "flood"
language = "en"
title = "{{ event_name }}: flooding"
topic = "Safety"
categories = ["street_flooding"]

[placeholders]
event_name = "Name of the event"
hotline = "Information line"
+++
## What to tell the caller

Call {{ hotline }}.
"""


def test_a_valid_template_parses():
    """The minimal example is accepted and its fields come through."""
    template = parse_template(VALID, Path("flood.en.md"))
    assert template.key == "flood.en"
    assert template.title == "{{ event_name }}: flooding"
    assert template.categories == ("street_flooding",)
    assert template.placeholders == {"event_name": "Name of the event", "hotline": "Information line"}
    assert template.body == "## What to tell the caller\n\nCall {{ hotline }}.\n"
    assert template.path == Path("flood.en.md")


def test_windows_line_endings_and_a_byte_order_mark_are_accepted():
    """Files saved by Windows editors still parse, with the body normalised to \\n."""
    template = parse_template("\ufeff" + VALID.replace("\n", "\r\n"), Path("flood.en.md"))
    assert "\r" not in template.body and template.hazard == "flood"


def test_a_file_not_named_hazard_dot_language_is_not_checked_against_its_name():
    """Only <hazard>.<language>.md names are compared with the front matter."""
    assert parse_template(VALID, Path("draft-flood.md")).key == "flood.en"


def _broken(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new)


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        pytest.param("## No front matter\n", "flood.en.md", "front matter", id="missing-front-matter"),
        pytest.param("+++\nhazard = \"flood\"\n", "flood.en.md", "not closed", id="unclosed-front-matter"),
        pytest.param(_broken('hazard = "flood"', "hazard = "), "flood.en.md", "not valid TOML", id="bad-toml"),
        pytest.param(_broken('hazard = "flood"', 'hazard = "volcano"'), "flood.en.md", "volcano", id="unknown-hazard"),
        pytest.param(VALID, "volcano.en.md", "does not match the file name", id="hazard-not-filename"),
        pytest.param(VALID, "hurricane.en.md", "does not match the file name", id="other-hazard-filename"),
        pytest.param(VALID, "flood.es.md", "language", id="language-not-filename"),
        pytest.param(_broken('language = "en"', 'language = "fr"'), "flood.fr.md", "'fr'", id="unknown-language"),
        pytest.param(_broken("Call {{ hotline }}.", "Call {{ hotline }} or {{ website }}."), "flood.en.md", "website", id="undeclared"),
        pytest.param(_broken('hotline = "Information line"', 'hotline = "x"\nunused = "y"'), "flood.en.md", "never used", id="unused"),
        pytest.param(_broken("{{ event_name }}: flooding", "Flooding"), "flood.en.md", "event_name", id="declared-only-in-title"),
        pytest.param(_broken("Call {{ hotline }}.", "Call {{ Hotline }}."), "flood.en.md", "not a placeholder", id="malformed-placeholder"),
        pytest.param(_broken("Call {{ hotline }}.", "Call {{ hotline }} {{ oops"), "flood.en.md", "'{{'", id="unclosed-braces"),
        pytest.param(_broken('categories = ["street_flooding"]\n', ""), "flood.en.md", "categories", id="missing-categories"),
        pytest.param(_broken('["street_flooding"]', '"street_flooding"'), "flood.en.md", "categories", id="categories-not-list"),
        pytest.param(_broken('["street_flooding"]', "[]"), "flood.en.md", "categories", id="no-categories"),
        pytest.param(_broken('["street_flooding"]', '["Street Flooding"]'), "flood.en.md", "categories", id="bad-category"),
        pytest.param(_broken('topic = "Safety"', 'topic = "Weather"'), "flood.en.md", "topic", id="unknown-topic"),
        pytest.param(_broken('topic = "Safety"', 'topic = "Safety"\nsumary = "x"'), "flood.en.md", "sumary", id="unknown-key"),
        pytest.param(_broken('title = "{{ event_name }}: flooding"', "title = 3"), "flood.en.md", "title", id="title-not-string"),
        pytest.param(_broken('hotline = "Information line"', 'hotline = ""'), "flood.en.md", "hotline", id="empty-description"),
        pytest.param(_broken("## What to tell the caller\n\nCall {{ hotline }}.\n", "\n"), "flood.en.md", "body", id="empty-body"),
    ],
)  # fmt: skip
def test_parse_errors_name_the_file_and_the_problem(text, name, message):
    """A broken template is refused with its file name and what is wrong."""
    with pytest.raises(TemplateError) as caught:
        parse_template(text, Path("some/folder") / name)
    assert str(caught.value).startswith(f"{name}: ")
    assert message in str(caught.value)


# --- loading a folder --------------------------------------------------------------------------


def test_load_templates_from_a_folder_sorts_by_hazard_and_language(tmp_path):
    """Any folder of templates can be loaded, e.g. a city's own library."""
    (tmp_path / "flood.es.md").write_text(
        VALID.replace('language = "en"', 'language = "es"'), encoding="utf-8"
    )
    (tmp_path / "flood.en.md").write_text(VALID, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a template", encoding="utf-8")
    assert [t.key for t in load_templates(tmp_path)] == ["flood.en", "flood.es"]


def test_load_templates_of_an_empty_folder_is_empty(tmp_path):
    """A folder without templates loads as an empty library."""
    assert load_templates(tmp_path) == []


def test_load_templates_names_the_broken_file(tmp_path):
    """One bad file stops the load, and the error says which."""
    (tmp_path / "flood.en.md").write_text(VALID, encoding="utf-8")
    (tmp_path / "hurricane.en.md").write_text(VALID, encoding="utf-8")
    with pytest.raises(TemplateError, match=r"^hurricane\.en\.md: hazard"):
        load_templates(tmp_path)


def test_load_templates_refuses_two_files_for_the_same_hazard_and_language(tmp_path):
    """A stray copy would import the same script twice."""
    (tmp_path / "flood.en.md").write_text(VALID, encoding="utf-8")
    (tmp_path / "flood-copy.md").write_text(VALID, encoding="utf-8")
    with pytest.raises(TemplateError, match=r"flood\.en\.md.*flood-copy\.md|flood-copy\.md.*flood\.en\.md"):
        load_templates(tmp_path)


def test_load_templates_names_a_file_that_is_not_utf8(tmp_path):
    """A file saved in another encoding is reported, not a crash."""
    (tmp_path / "flood.en.md").write_bytes(VALID.replace("Call", "Llame aquí").encode("latin-1"))
    with pytest.raises(TemplateError, match=r"^flood\.en\.md: .*UTF-8"):
        load_templates(tmp_path)


def test_load_templates_refuses_a_missing_folder(tmp_path):
    """A mistyped path is an error, not an empty library."""
    with pytest.raises(TemplateError, match="not a folder"):
        load_templates(tmp_path / "missing")
