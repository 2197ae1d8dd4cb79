// Package lookupkey holds what Postfix's database lookup tables (mysql,
// pgsql, sqlite, ldap) share about keys and results: case folding as
// dict_utf8 does (smtputf8_enable yes and no), the %-expansions of
// queries, filters, search bases and result_format with Postfix's
// suppression rules (db_common.c), and the "domain" restriction list.
//
// Fold and FoldASCII fold a key before it is looked up; Parse validates a
// table's templates and gathers what they need from keys and values, so
// that Templates.Expand and Templates.FormatResult expand them exactly as
// Postfix does, or report that Postfix suppresses the lookup or skips the
// value; CheckDomain applies the "domain" restriction list. IsDomainName
// tells which listed keys are domain names a mail client could use.
//
// sources/sqltable and sources/ldaptable both use it: the semantics are
// Postfix's db_common.c and dict_utf8.c, which dict_mysql, dict_pgsql,
// dict_sqlite and dict_ldap share. The package only computes; it never
// quotes (each backend passes its own quoting to Expand) and reads files
// only for "/file" patterns of a domain list.
package lookupkey
