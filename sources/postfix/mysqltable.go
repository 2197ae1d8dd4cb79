package postfix

import "github.com/mailautoconf/mailautoconf/sources/hostfs"

// MySQLTable is a Postfix MySQL lookup table file as mysql_table(5) defines
// it ("proxy:mysql:/etc/postfix/mysql/virtual_mailbox_domains.cf").
type MySQLTable struct {
	Path string // host path of the .cf file

	// Hosts as written, in order: "localhost", "127.0.0.1:3306",
	// "inet:db.example.com:3306", "unix:/run/mysqld/mysqld.sock".
	Hosts    []string
	User     string
	Password string
	DBName   string

	// Query is the lookup query with its %-expansions unexpanded. When the
	// file uses the legacy form (table, select_field, where_field,
	// additional_conditions), Query is the query Postfix composes from it:
	// "SELECT select_field FROM table WHERE where_field='%s' additional_conditions".
	Query string
	// Legacy reports that Query was composed from the legacy fields.
	Legacy bool

	// Domain is the "domain" restriction list as written; when it is not
	// empty, Postfix never queries a bare domain name (mysql_table(5)).
	Domain []string

	ResultFormat   string // result_format, "%s" by default
	ExpansionLimit int    // expansion_limit, 0 for none

	OptionFile  string // option_file
	OptionGroup string // option_group, "client" by default

	TLSCertFile   string
	TLSKeyFile    string
	TLSCAFile     string
	TLSCAPath     string
	TLSVerifyCert bool

	// Params holds every "name = value" of the file as written (the last
	// one wins), for display. It includes the password.
	Params map[string]string
	// Pos tells where each parameter in Params was set.
	Pos map[string]hostfs.Pos
}
