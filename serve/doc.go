// Package serve turns a discover.Snapshot into HTTP answers to mail
// clients' discovery requests (../shared/spec/PROTOCOLS.md).
//
// NewSite renders, once per snapshot, every document that depends only on
// the domain: the Mozilla autoconfig document (one for domains users log
// in at, one for alias domains, which lists the domain and its target but
// never the target's other aliases), the Outlook POX settings and error
// documents, the
// autodiscover.json answers, the HTML pages, and the signer of Apple
// profiles. A Store publishes the current Site with one atomic pointer
// swap; a Handler loads it once per request, finds the domain in a map
// (asking the database, within lookupTimeout, only for a domain the
// snapshot could not list), and appends the document with the request's
// address, escaped, to a pooled buffer.
//
// Routes (paths match without regard to case; the address in the request
// wins over the Host header, which otherwise names the domain after one
// leading autoconfig. or autodiscover. label is stripped):
//
//	GET|HEAD /mail/config-v1.1.xml                           Mozilla autoconfig
//	GET|HEAD /.well-known/autoconfig/mail/config-v1.1.xml    same
//	GET|HEAD /.well-known/mail-v1.xml                        same
//	POST     /autodiscover/autodiscover.xml                  Outlook POX, ActiveSync 601
//	GET|HEAD /autodiscover/autodiscover.xml                  domain-level POX (Delta Chat),
//	                                                         302 to HTTPS behind X-Forwarded-Proto: http
//	GET|HEAD /autodiscover/autodiscover.json[?Email=]        Autodiscover v2
//	GET|HEAD /autodiscover/autodiscover.json/v1.0/<address>  same, path form
//	GET|HEAD /mobileconfig?emailaddress= , /email.mobileconfig?email=   Apple profile
//	GET|HEAD /[?emailaddress=]                               HTML form / settings page
//
// Statuses: 200; 204 for OPTIONS; 302 (above); 400 for an invalid address
// or parameter, naming it; 404 for an unhosted domain or unknown path; 405
// with Allow for another method; 413 for a body over 64 KiB; 503 when the
// domain database fails, or when the process's budget for signing Apple
// profiles is spent (mobileconfig.ErrBusy, with Retry-After). POX errors are documents with HTTP 200 (413 for
// an oversized body): 600 unreadable request or invalid address, 601
// schema not offered (mobilesync gets its own 601 form), 500 domain not
// hosted, 603 database failure. Nothing answers 500 except a profile
// that cannot be made.
package serve
