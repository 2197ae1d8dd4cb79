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
// The MX record is suggested, not prescribed: a domain's mail may reach
// this host through a filtering front-end. No TXT record is defined for
// mail client setup (DNS.md §2.7), so none is written; nor are CalDAV or
// MTA-STS records, which need servers this host does not describe.
package dnsrecords
