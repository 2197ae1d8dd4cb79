#!/usr/bin/python3
"""List a user's calendars and address books on a CalDAV/CardDAV server
with python3-caldav, as a client would after autoconfiguration.

Usage: davlist.py PRINCIPAL_URL USER PASSWORD CAFILE [HOST:IP]

HOST:IP makes HOST resolve to IP (the test's server name has no DNS).
Prints "calendar NAME URL" and "addressbook NAME URL" lines; exits non-zero
when the server cannot be reached, refuses the login, or either list is
empty.
"""

import socket
import sys
from urllib.parse import urljoin

import caldav
from lxml import etree

DAV = "DAV:"
CARD = "urn:ietf:params:xml:ns:carddav"


def main():
    url, user, password, cafile = sys.argv[1:5]
    if len(sys.argv) > 5:
        name, ip = sys.argv[5].split(":", 1)
        real = socket.getaddrinfo

        def resolve(host, *args, **kwargs):
            return real(ip if host == name else host, *args, **kwargs)

        socket.getaddrinfo = resolve

    client = caldav.DAVClient(url=url, username=user, password=password, ssl_verify_cert=cafile)
    principal = client.principal()

    calendars = principal.calendars()
    for c in calendars:
        print("calendar", c.name, c.url)

    # python3-caldav 0.11 has no CardDAV API: ask the principal for its
    # addressbook-home-set, then list the address books in it.
    body = ('<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:C="%s">'
            "<D:prop><C:addressbook-home-set/></D:prop></D:propfind>" % CARD)
    resp = client.propfind(str(principal.url), body, 0)
    if resp.status != 207:
        sys.exit("PROPFIND addressbook-home-set: %s" % resp.status)
    homes = resp.tree.findall(".//{%s}addressbook-home-set/{%s}href" % (CARD, DAV))
    if not homes:
        sys.exit("no addressbook-home-set in\n" + etree.tostring(resp.tree).decode())
    home = urljoin(str(principal.url), homes[0].text.strip())
    body = ('<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:">'
            "<D:prop><D:resourcetype/><D:displayname/></D:prop></D:propfind>")
    resp = client.propfind(home, body, 1)
    if resp.status != 207:
        sys.exit("PROPFIND %s: %s" % (home, resp.status))
    books = []
    for r in resp.tree.findall("{%s}response" % DAV):
        if r.find(".//{%s}resourcetype/{%s}addressbook" % (DAV, CARD)) is None:
            continue
        href = urljoin(home, r.find("{%s}href" % DAV).text.strip())
        name = r.findtext(".//{%s}displayname" % DAV) or ""
        books.append(href)
        print("addressbook", name, href)

    if not calendars:
        sys.exit("no calendars")
    if not books:
        sys.exit("no address books")


if __name__ == "__main__":
    main()
