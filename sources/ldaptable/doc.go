// Package ldaptable answers questions from the directory Postfix itself
// queries through ldap_table(5) lookup files: "is example.com a hosted
// domain?" (Lookup) and "which domains are hosted?" (EachDomain).
//
// Lookup gives exactly the answer of Postfix 3.7 (libldap 2.5) for a key:
// the same key folding, the same %-expansions of search_base (escaped as
// RFC 4514 wants) and query_filter (escaped as RFC 4515 wants), the same
// suppressed searches, the filter parsed as libldap parses it, the same
// terminal, leaf and special (DN and URL) result attributes, recursion,
// expansion and size limits, result_format, domain restriction, scope,
// dereferencing, protocol version, bind, STARTTLS and TLS settings. Key
// folding, the %-expansions and their suppression rules, result_format and
// the domain restriction are sources/lookupkey's, which the SQL tables
// share, as Postfix's dict_ldap shares them with dict_mysql. What
// Postfix fails with a temporary error fails here with an error that names
// the table and the server; bind_pw never appears in an error.
//
// EachDomain lists the hosted domains, which Postfix never needs to: it
// derives from query_filter a search for every entry some key could find,
// takes the values the key is compared with as candidates, and keeps the
// candidates a real Lookup answers.
//
// The package speaks LDAP through github.com/go-ldap/ldap/v3. Open does no
// I/O; each server's connection is shared by concurrent calls, and one that
// went away is replaced on the next call.
package ldaptable
