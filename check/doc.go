// Package check is the doctor of a live setup: it turns a
// discover.Snapshot into a list of Results, each saying whether one thing
// a mail client depends on works, and, when it does not, what to change.
//
// It looks from the mail host itself, as a client would, and only reads:
//
//   - DNS: the records dnsrecords computes for each domain, compared with
//     what the resolver answers (missing, wrong target, wrong port, wrong
//     TXT path=), the mail host's addresses and each domain's MX;
//   - the discovery URLs over HTTPS (https://autoconfig.<d>/mail/config-v1.1.xml,
//     https://<d>/.well-known/autoconfig/mail/config-v1.1.xml, and a POST to
//     https://autodiscover.<d>/autodiscover/autodiscover.xml), with the
//     certificate verified for each name and the answer compared with the
//     snapshot's endpoints;
//   - the groupware services the host proves it serves (groupware.go): a
//     PROPFIND (Depth 0) without credentials to the CalDAV and CardDAV URL,
//     expecting 401 or 207, and an OPTIONS to the ActiveSync URL,
//     expecting 401, or 200 with MS-ASProtocolVersions;
//   - every advertised IMAP, POP3 and SMTP endpoint: TCP connect, implicit
//     TLS or STARTTLS exactly as advertised, the certificate verified for the
//     advertised host name and not expiring within 14 days, the greeting, and
//     a password mechanism offered once TLS is up. It never logs in and never
//     sends a password;
//   - each client's own lookup order (clients.go): Thunderbird, Thunderbird
//     for Android (with their MX fallback), Outlook and the Apple profile
//     the settings page links (and whether it carries the CalDAV and
//     CardDAV payloads), Thunderbird's calendar and address book lookup
//     (_caldavs/_carddavs SRV and TXT path=, then /.well-known/caldav and
//     carddav) for a host serving them, one result per client and domain (Group
//     "client") naming the first URL that gives the client its settings and
//     what it is told, or why none does and the cheapest fix. A client's
//     URLs are requested concurrently, as Thunderbird does; the order only
//     says which answer wins.
//
// Every network step has a deadline (Options.Timeout), the whole run one
// more (Options.Total), and probes run concurrently (Options.Concurrency),
// so a dead host or resolver is reported, not waited for.
package check
