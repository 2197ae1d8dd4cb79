// Package postfix reads a Postfix configuration directory (main.cf,
// master.cf and the lookup-table files they name) into plain values, with
// the semantics of postconf(5), master(5), mysql_table(5), pgsql_table(5),
// sqlite_table(5), ldap_table(5) and postmap(1).
//
// Load reads a directory under a hostfs.Root. Config.Param gives a main.cf
// parameter as "postconf -x" prints it: the last definition wins, $name,
// ${name?value}, ${name:value} and relational ${{a} op {b} ? ...} expressions
// are expanded, and parameters left unset take Postfix 3.7's built-in
// defaults. Config.Services lists master.cf's inet services, and
// Config.Settings tells for each one its TLS mode, whether it offers SASL and
// whether mail clients should submit mail there. Config.Tables splits a
// domain list such as virtual_mailbox_domains into literal names and lookup
// tables, whose contents ParseTableSource (postmap input files) and
// ParseSQLTable (mysql, pgsql and sqlite table files) and ParseLDAPTable
// (ldap_table files) read; querying a database is left to the caller.
//
// Parsers never log. Each syntax error is a *hostfs.PosError naming the
// host file and line; a parser reports every bad line, joined with
// errors.Join.
package postfix
