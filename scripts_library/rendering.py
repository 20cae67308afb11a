"""Script text for people: Markdown to sanitised HTML, and the difference between versions."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import nh3
from markdown_it import MarkdownIt

# Raw HTML in a script is shown as text (html=False), and nh3 then removes anything that
# could still run in an agent's browser: no script, style, iframe, event attributes or
# javascript: links can survive.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "b", "i", "u", "s", "del", "code", "pre", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto", "tel"}


def render_markdown(body: str) -> str:
    """Return the body as sanitised HTML, safe to insert into any page."""
    html = _markdown.render(body or "")
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


@dataclass(frozen=True)
class DiffLine:
    """One line of a comparison: ``kind`` is "same", "added" or "removed"."""

    kind: str
    text: str


def diff_lines(old: str, new: str) -> list[DiffLine]:
    """Compare two texts line by line, for the reviewer's view of what changed."""
    result: list[DiffLine] = []
    old_lines, new_lines = (old or "").splitlines(), (new or "").splitlines()
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if tag == "equal":
            result.extend(DiffLine("same", line) for line in old_lines[a_start:a_end])
            continue
        result.extend(DiffLine("removed", line) for line in old_lines[a_start:a_end])
        result.extend(DiffLine("added", line) for line in new_lines[b_start:b_end])
    return result
