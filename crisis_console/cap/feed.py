"""The Atom index of the CAP messages: one entry per published message (every revision).

Each entry links to its immutable CAP document and repeats the CAP fields the NWS Atom
index carries (``cap:event``, ``cap:effective``, ``cap:expires``, ``cap:status``,
``cap:msgType``, ``cap:category``, ``cap:urgency``, ``cap:severity``, ``cap:certainty``,
``cap:areaDesc`` and ``cap:geocode``), in the CAP 1.2 namespace, so that a reader can filter
without fetching every document. Pure Python over lxml: no Flask, no Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from crisis_console.cap.documents import CAP12, xml_text

ATOM = "http://www.w3.org/2005/Atom"
CAP_MIME = "application/cap+xml"


@dataclass(frozen=True)
class Entry:
    """One feed entry: one published message (a revision of an event's or announcement's chain)."""

    identifier: str
    title: str
    published: str  # RFC 3339: when the message was sent
    updated: str  # RFC 3339: the same (a published message never changes)
    link: str
    summary: str
    status: str
    msg_type: str
    event: str
    severity: str
    area_desc: str
    urgency: str = ""
    certainty: str = ""
    categories: tuple[str, ...] = ()
    effective: str = ""  # CAP time (``-00:00``), as in the document
    expires: str = ""
    geocodes: tuple[tuple[str, str], ...] = ()


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
        _add_entry(root, entry)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _add_entry(root: etree._Element, entry: Entry) -> None:
    element = etree.SubElement(root, f"{{{ATOM}}}entry")
    _add(element, "id", entry.identifier)
    _add(element, "title", entry.title)
    _add(element, "published", entry.published)
    _add(element, "updated", entry.updated)
    etree.SubElement(element, f"{{{ATOM}}}link", rel="alternate", type=CAP_MIME, href=entry.link)
    _add(element, "summary", entry.summary)
    _cap(element, "event", entry.event)
    _cap(element, "effective", entry.effective)
    _cap(element, "expires", entry.expires)
    _cap(element, "status", entry.status)
    _cap(element, "msgType", entry.msg_type)
    for category in entry.categories:
        _cap(element, "category", category)
    _cap(element, "urgency", entry.urgency)
    _cap(element, "severity", entry.severity)
    _cap(element, "certainty", entry.certainty)
    _cap(element, "areaDesc", entry.area_desc)
    for name, value in entry.geocodes:
        geocode = etree.SubElement(element, f"{{{CAP12}}}geocode")
        _cap(geocode, "valueName", name)
        _cap(geocode, "value", value)


def _add(parent: etree._Element, name: str, text: str) -> None:
    etree.SubElement(parent, f"{{{ATOM}}}{name}").text = xml_text(text)


def _cap(parent: etree._Element, name: str, text: str) -> None:
    """Append ``<cap:name>text</cap:name>``; fields a message does not have are left out."""
    if text:
        etree.SubElement(parent, f"{{{CAP12}}}{name}").text = xml_text(text)
