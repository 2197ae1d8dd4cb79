// Package dnsrecords turns a discover.Snapshot into the DNS records each
// hosted domain should publish for mail clients to find the server
// (../shared/spec/DNS.md), and into the list of names the TLS
// certificates must cover, marking those the current certificates lack.
//
// For every domain <d> served by the mail host <h>:
//
//	autoconfig.<d>.           CNAME  <h>.                  Mozilla autoconfig (HTTPS)
//	autodiscover.<d>.         CNAME  <h>.                  Outlook Autodiscover (HTTPS)
//	_autodiscover._tcp.<d>.   SRV    0 0 443 <h>.          Outlook (last step, prompts), Thunderbird's Exchange lookup
//	_imaps._tcp.<d>. ... _submission._tcp.<d>.  SRV       RFC 6186 / RFC 8314
//
// Few clients read the RFC 6186 records: neither Thunderbird (desktop or
// Android), nor Evolution, Outlook or Apple Mail. The Thunderbirds find
// the servers through autoconfig.<d> and, failing that, through
// autoconfig.<base domain of the first MX>; the plan's notes say so.
//
// The SRV records follow the snapshot's endpoint order: incoming (IMAP,
// then POP3) share one priority scale and submission has its own, 0 for
// the best and 10 more for each next, so implicit TLS comes first (RFC 8314
// §5.1) and IMAP before POP3 (RFC 6186 §3.4). A service the host does not
// offer gets the "not offered" record, SRV 0 0 0 . (RFC 2782), so clients
// do not guess. Endpoints without TLS are left out, as the discovery
// documents leave them out.
//
// When discover proves the host serves CalDAV and CardDAV (SOGo behind
// nginx: discover.Snapshot.Service), each domain also gets the RFC 6764
// records (DNS.md §2.6), pointing at the HTTPS server and its context path:
//
//	_caldavs._tcp.<d>.        SRV    0 1 443 <h>.          Thunderbird, Apple Calendar
//	_caldavs._tcp.<d>.        TXT    "path=/SOGo/dav/"
//	_carddavs._tcp.<d>.       SRV    0 1 443 <h>.          Thunderbird, Apple Contacts
//	_carddavs._tcp.<d>.       TXT    "path=/SOGo/dav/"
//
// Thunderbird finds a calendar or address book from the email domain's
// _caldavs/_carddavs SRV record and TXT path=, then from
// https://<d>/.well-known/caldav|carddav. A host without proven groupware
// gets none of these (not even "not offered" records: RFC 6764 defines
// none), and ActiveSync needs no record beyond Autodiscover's.
//
// The MX record is suggested, not prescribed: a domain's mail may reach
// this host through a filtering front-end. No TXT record is defined for
// mail client setup (DNS.md §2.7), so none is written for mail; nor are
// MTA-STS records, which need servers this host does not describe.
package dnsrecords
