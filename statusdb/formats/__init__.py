"""Public renderings of a status page for the clients that already speak a standard format.

* `statusdb.formats.statuspage`: Statuspage public API v2 JSON documents (summary, status,
  components, incidents, scheduled maintenances), composed in the database;
* `statusdb.formats.feeds`: Atom 1.0 (RFC 4287) and RSS 2.0 feeds of a page's status incidents
  and maintenance windows, with their updates;
* `statusdb.formats.ical`: an iCalendar (RFC 5545) feed of a page's maintenance, recurring
  windows as RRULE in their time zone.

Each takes a connection (sync or async, like an operation), a page slug and the page's token
for a private page, and returns the document's bytes with an ETag and a content type. A private
page without its token is `NotFound`, like an unknown slug. Layered like the operations.
"""
