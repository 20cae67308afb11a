"""Script text for people: Markdown to sanitised HTML, and the difference between versions."""

from __future__ import annotations

import difflib
import re
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


_TAG_RE = re.compile(r"<[^>]{0,200}>")


def plain_text(body: str) -> str:
    """Return the Markdown body as plain text, one line per block (for CAP and SMS, not pages).

    List items keep a "- " bullet and links keep their address in brackets; anything that
    looks like an HTML tag is dropped, so no markup reaches a plain-text channel.
    """
    lines: list[str] = []
    bullet = ""
    for token in _markdown.parse(body or ""):
        if token.type == "list_item_open":
            bullet = "- "
        elif token.type in ("fence", "code_block"):
            lines.extend(token.content.rstrip("\n").splitlines())
        elif token.type == "inline":
            text = _inline_text(token.children or [])
            if text.strip():
                lines.append(bullet + text.strip())
                bullet = ""
    return "\n".join(_TAG_RE.sub("", line) for line in lines).strip()


def _inline_text(children: list) -> str:
    """Return the text of an inline token's children."""
    parts: list[str] = []
    href = ""
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
        elif child.type == "link_open":
            href = str(child.attrs.get("href", ""))
        elif child.type == "link_close" and href:
            if href.removeprefix("mailto:").removeprefix("tel:") not in "".join(parts):
                parts.append(f" ({href})")
            href = ""
    return "".join(parts)
