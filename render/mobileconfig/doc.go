// Package mobileconfig turns a discover.Snapshot and a mail address into an
// Apple configuration profile (.mobileconfig) that sets up the account in
// Mail on iOS, iPadOS and macOS, and signs it with the mail host's own
// certificate so the install sheet shows it as verified.
//
// Profile writes the unsigned XML property list: one com.apple.mail.managed
// payload with the best incoming server (IMAP, or POP3 when the host offers
// no IMAP) and the best SMTP submission server, never a password; and, when
// the host proves it serves CalDAV and CardDAV (SOGo behind nginx, see
// discover.Snapshot.Service), a com.apple.caldav.account and a
// com.apple.carddav.account payload with the same user name. Its UUIDs
// and identifiers are derived from the host name and the address, so
// installing a newer profile for the same address replaces the old one.
//
// A Signer wraps those bytes in CMS SignedData (RFC 5652; DER, content
// attached, the signer's certificate and chain included), which is what
// "openssl smime -sign -nodetach -outform der" writes and what Apple
// devices verify. Because the signature covers the exact bytes, a profile
// cannot be a render.Template; instead the Signer caches signed profiles
// (a Cache, bounded in bytes and kept from one snapshot's Signer to the
// next while the certificate is the same), so a repeated request costs a
// map lookup. Signing is bounded for the whole process (see
// MaxSignWaiting): one signature at a time, and a budget per second.
//
// A signed profile is shown as "Verified" with the mail host's name, so
// it carries nothing from the request that could pass for the host's
// words: the address only when its local part is a plain dot-atom, never
// a display name. Otherwise, and beyond the budget, the domain's profile
// is signed instead: no address and no user name, which Mail asks for on
// installation (Apple's Mail payload makes both optional).
//
// Signing uses github.com/smallstep/pkcs7: the maintained continuation of
// mozilla-services/pkcs7 (now archived), with tagged releases, no
// dependencies beyond the standard library, RSA and ECDSA signers with
// SHA-256, and already the CMS code of the Apple MDM servers in micromdm
// (nanomdm, nanodep, scep). github.com/digitorus/pkcs7 was the other
// candidate; it has no tagged release and its current version requires a
// newer Go than this module's.
package mobileconfig
