"""The Atom feed that lists the CAP messages in force, one entry per event or announcement.

Each entry links to its CAP document and repeats a few CAP fields (in the CAP namespace,
as the NWS feed does) so that a reader can filter without fetching every document.
Pure Python over lxml: no Flask, no Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from crisis_console.cap.documents import CAP12, xml_text

ATOM = "http://www.w3.org/2005/Atom"
CAP_MIME = "application/cap+xml"


@dataclass(frozen=True)
class Entry:
    """One feed entry: the latest message about one event or announcement."""

    identifier: str
    title: str
    updated: str  # RFC 3339
    link: str
    summary: str
    status: str
    msg_type: str
    event: str
    severity: str
    area_desc: str


def to_atom(
    *, feed_id: str, title: str, self_link: str, updated: str, author: str, entries: list[Entry]
) -> bytes:
    """Return the Atom feed document (UTF-8, with declaration)."""
    root = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM, "cap": CAP12})
    _add(root, "id", feed_id)
    _add(root, "title", title)
    _add(root, "updated", updated)
    etree.SubElement(root, f"{{{ATOM}}}link", rel="self", type="application/atom+xml", href=self_link)
    _add(etree.SubElement(root, f"{{{ATOM}}}author"), "name", author)
    for entry in entries:
        element = etree.SubElement(root, f"{{{ATOM}}}entry")
        _add(element, "id", entry.identifier)
        _add(element, "title", entry.title)
        _add(element, "updated", entry.updated)
        etree.SubElement(element, f"{{{ATOM}}}link", rel="alternate", type=CAP_MIME, href=entry.link)
        _add(element, "summary", entry.summary)
        for name, value in (
            ("status", entry.status),
            ("msgType", entry.msg_type),
            ("event", entry.event),
            ("severity", entry.severity),
            ("areaDesc", entry.area_desc),
        ):
            etree.SubElement(element, f"{{{CAP12}}}{name}").text = xml_text(value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _add(parent: etree._Element, name: str, text: str) -> None:
    etree.SubElement(parent, f"{{{ATOM}}}{name}").text = xml_text(text)
