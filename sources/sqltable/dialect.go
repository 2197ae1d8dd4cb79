package sqltable

import "github.com/mailautoconf/mailautoconf/sources/postfix"

// A dialect is what differs between the SQL servers Postfix queries; the
// rest of Postfix's SQL-table semantics is shared.
type dialect interface {
	// name is the Postfix table type: "mysql", "pgsql", "sqlite".
	name() string
	// open returns the servers of table cf in the order Postfix tries
	// them, each with a pool that connects on first use.
	open(cf *postfix.SQLTable, opt Options) ([]*endpoint, error)
	// quote escapes a key for use between single quotes, as Postfix's
	// client library does for this server.
	quote(s string) string
	// syntax tells how queries are spelled, for deriving listings.
	syntax() syntax
	// explain rewords a driver's error for an admin (a refused password
	// reads "access denied"); it never adds a password.
	explain(err error) error
	// columnsQuery returns a query listing the lower-case column names of
	// table in the table's own database ("" when there is no way).
	columnsQuery(table string) string
}

// dialects maps table types to their dialect.
var dialects = map[string]dialect{
	"mysql":  mysqlDialect{},
	"pgsql":  pgsqlDialect{},
	"sqlite": sqliteDialect{},
}

// syntax tells the lexer how a dialect spells queries.
type syntax struct {
	backquoteIdent    bool // `x` is an identifier (MySQL, SQLite)
	doubleQuoteString bool // "x" is a string (MySQL's default sql_mode), else an identifier
	mysqlComments     bool // # starts a comment, -- only before white space, /*! is executable (MySQL)
	backslashEscapes  bool // \ escapes in strings (MySQL)
	pipesConcat       bool // || concatenates (PostgreSQL, SQLite); MySQL reads it as OR
}
