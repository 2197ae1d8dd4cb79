package discover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/ldaptable"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
	"github.com/mailautoconf/mailautoconf/sources/sqltable"
)

// buildDomains collects the hosted domains from the tables Postfix itself
// consults: virtual_mailbox_domains (mailbox domains) and
// virtual_alias_domains (alias domains). A table that cannot be enumerated
// (a query we cannot turn into a listing, an unsupported table type, a
// database that is down) leaves DomainsListed false; where it can still be
// asked about one domain, Lookup asks it per request.
func (b *builder) buildDomains(ctx context.Context) {
	for _, param := range []struct {
		name  string
		alias bool
	}{{"virtual_mailbox_domains", false}, {"virtual_alias_domains", true}} {
		if v, _ := b.pf.Param(param.name); v != "" {
			for _, item := range splitList(v) { // "/file/name" list files
				b.read(strings.TrimLeft(item, "! \t"))
			}
		}
		tables, err := b.pf.Tables(param.name)
		if err != nil {
			b.warn("%s: %v", param.name, withHint(err))
			b.snap.listed = false
		}
		for _, t := range tables {
			if !t.Pos.IsZero() {
				b.read(t.Pos.File) // main.cf or a list file
			}
			b.addTable(ctx, param.name, param.alias, t)
		}
	}
	b.applyAliases()
	if b.snap.domains.len() == 0 && len(b.snap.lookups) == 0 {
		b.warn("no hosted domains: virtual_mailbox_domains and virtual_alias_domains are empty, and domains of mydestination (local Unix accounts) are not served")
	}
}

// addDomain records one hosted domain, listed at src (a table's host path,
// or the file:line of an entry). A name that is not a usable domain
// (PostfixAdmin's "ALL" marker, "localhost", a pattern) is skipped.
func (b *builder) addDomain(name string, alias bool, src hostfs.Pos) {
	d, err := normalizeDomain(name)
	if err != nil {
		b.opt.Log.Debug("skipping domain table entry", "entry", name, "source", src.String(), "err", err)
		return
	}
	info := packDomainInfo(b.source(src.File), src.Line, alias)
	if prev, ok := b.snap.domains.get(d); ok {
		if prev.alias() && !alias { // a mailbox domain wins over an alias listing
			b.replaceDomain(d, prev, info)
		}
		return
	}
	b.putDomain(d, info)
}

func (b *builder) addTable(ctx context.Context, param string, alias bool, t postfix.Table) {
	where := fmt.Sprintf("%s (%s)", t.Raw, t.Pos)
	switch t.Type {
	case "":
		if strings.HasPrefix(t.Name, "!") || strings.HasPrefix(t.Name, ".") {
			b.warn("%s entry %q (%s) is a pattern, not a domain: mailautoconf does not answer for it", param, t.Name, t.Pos)
			return
		}
		b.addDomain(t.Name, alias, t.Pos)
	case "hash", "btree", "lmdb", "cdb", "dbm", "sdbm", "texthash":
		b.read(t.Name)
		if suffix := compiledSuffix[t.Type]; suffix != "" {
			b.read(t.Name + suffix) // postmap rewrites it
		}
		keys, err := postfix.LoadTableSource(b.opt.Root, t.Name)
		var bad *hostfs.PosError
		switch {
		case err != nil && !errors.As(err, &bad):
			b.tableUnreadable(param, where, t.Name, alias, err)
			return
		case err != nil:
			// Bad lines are skipped, as postmap does; the others count.
			b.warn("%s: %s: %v", param, where, err)
		}
		for _, k := range keys {
			b.addDomain(k.Key, alias, k.Pos)
		}
		b.checkCompiled(t)
	case "inline":
		for _, kv := range splitList(strings.Trim(strings.TrimSpace(t.Name), "{}")) {
			key, _, _ := strings.Cut(kv, "=")
			b.addDomain(strings.TrimSpace(key), alias, t.Pos)
		}
	default:
		if databaseTypes[t.Type] {
			b.addDatabaseTable(ctx, param, alias, t)
			return
		}
		b.warn("%s: %s: %s tables cannot be listed or queried (supported: literal names, hash, btree, lmdb, cdb, dbm, sdbm, texthash, inline, mysql, pgsql, sqlite, ldap): their domains are not served", param, where, t.Type)
		b.snap.listed = false
	}
}

// compiledSuffix is the file postmap writes for an indexed table type.
var compiledSuffix = map[string]string{"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb", "dbm": ".pag", "sdbm": ".pag"}

// checkCompiled warns when Postfix's compiled form of a table is missing or
// older than the text source we read: Postfix answers from the compiled file.
func (b *builder) checkCompiled(t postfix.Table) {
	suffix := compiledSuffix[t.Type]
	if suffix == "" {
		return
	}
	src, err := b.opt.Root.Stat(t.Name)
	if err != nil {
		return
	}
	db, err := b.opt.Root.Stat(t.Name + suffix)
	switch {
	case err != nil:
		b.warn("%s has no compiled %s file (%s): Postfix does not see these domains until you run postmap %s:%s", t.Name, t.Type, t.Name+suffix, t.Type, t.Name)
	case db.ModTime().Before(src.ModTime()):
		b.warn("%s is newer than %s: run postmap %s:%s so Postfix sees the same domains", t.Name, t.Name+suffix, t.Type, t.Name)
	}
}

// A domainTable is a lookup table whose keys are hosted domains, whatever
// its backend: an SQL table (sqltable: mysql, pgsql, sqlite) or an LDAP
// table (ldaptable).
type domainTable interface {
	// EachDomain streams the domains Postfix's lookup of a bare domain
	// finds, with target, the lookup's first result when it is another
	// name (the domain an alias domain stands for). restart is called
	// before the listing starts over on another server.
	EachDomain(ctx context.Context, fn func(domain, target string), restart func()) error
	// Lookup is Postfix's own lookup of one key.
	Lookup(ctx context.Context, key string) ([]string, error)
	Close() error
}

// aliasTable is a domainTable that also knows alias domains by a table of
// their own (iRedMail's and PostfixAdmin's alias_domain), where Postfix's
// lookup answers an alias domain with itself.
type aliasTable interface {
	AliasTargets(ctx context.Context) (map[string]string, error)
	AliasTarget(ctx context.Context, alias string) (string, error)
}

// openDomainTable reads the lookup file of a database table t and opens
// it, recording the files it depends on.
func (b *builder) openDomainTable(t postfix.Table) (domainTable, error) {
	b.read(t.Name)
	// With smtputf8_enable = no, Postfix folds only ASCII letters of
	// lookup keys.
	v, _ := b.pf.Param("smtputf8_enable")
	asciiFold := strings.EqualFold(v, "no")
	switch t.Type {
	case "mysql", "pgsql", "sqlite":
		cf, err := postfix.LoadSQLTable(b.opt.Root, t.Type, t.Name)
		if err != nil {
			return nil, withHint(err)
		}
		opt := b.opt.MySQL
		switch t.Type {
		case "pgsql":
			opt = b.opt.PgSQL
		case "sqlite":
			opt = b.opt.SQLite
		}
		opt.Root = b.opt.Root
		opt.SMTPUTF8Disabled = opt.SMTPUTF8Disabled || asciiFold
		b.read(cf.OptionFile, cf.TLSCertFile, cf.TLSKeyFile, cf.TLSCAFile, cf.DBPath)
		if t.Type == "mysql" && cf.OptionFile == "" && cf.OptionGroup != "" {
			b.read("/etc/my.cnf", "/etc/mysql/my.cnf") // what libmariadb reads then
		}
		tab, err := sqltable.Open(cf, opt)
		if err != nil {
			return nil, withHint(err)
		}
		return tab, nil
	case "ldap":
		cf, err := postfix.LoadLDAPTable(b.opt.Root, t.Name)
		if err != nil {
			return nil, withHint(err)
		}
		opt := b.opt.LDAP
		opt.Root = b.opt.Root
		opt.SMTPUTF8Disabled = opt.SMTPUTF8Disabled || asciiFold
		b.read(cf.TLSCACertFile, cf.TLSCert, cf.TLSKey)
		tab, err := ldaptable.Open(cf, opt)
		if err != nil {
			return nil, withHint(err)
		}
		return tab, nil
	}
	return nil, fmt.Errorf("%s tables cannot be read", t.Type)
}

// databaseTypes are the table types read by querying their server.
var databaseTypes = map[string]bool{"mysql": true, "pgsql": true, "sqlite": true, "ldap": true}

// addDatabaseTable lists the domains of a database table t and arranges
// for the domains the listing lacks to be looked up per request.
func (b *builder) addDatabaseTable(ctx context.Context, param string, alias bool, t postfix.Table) {
	where := fmt.Sprintf("%s (%s)", t.Raw, t.Pos)
	use := tableUse{t.Name, alias}
	if b.tableSeen[use] {
		b.read(t.Name)
		return // listed twice with the same meaning: nothing more to learn
	}
	b.tableSeen[use] = true
	tab, err := b.openDomainTable(t)
	if err != nil {
		var bad *hostfs.PosError
		if errors.As(err, &bad) || errors.Is(err, fs.ErrNotExist) {
			b.warn("%s: %s: %v", param, where, err)
			b.snap.listed = false
			return
		}
		b.tableUnreadable(param, where, t.Name, alias, err)
		return
	}
	b.snap.closers = append(b.snap.closers, tab.Close)
	aliases, _ := tab.(aliasTable)
	// Even a listed table is asked about a domain its listing lacked: one
	// added since (in an admin panel) is then served on the next request.
	b.snap.lookups = append(b.snap.lookups, domainLookup{source: t.Name, alias: alias, table: tab, aliases: aliases})

	// The listing is streamed into the snapshot's map, never held whole
	// (a million domains). What this table added is taken out again when
	// the listing fails part-way or starts over on the next database host:
	// the entries carrying exactly this source and kind. (They are all its
	// own: mailbox tables are read before alias tables, so it never takes
	// over another table's entry, and a table used twice the same way is
	// read once.)
	if b.snap.domains.len() == 0 && b.opt.Previous != nil {
		b.snap.domains.reserve(b.opt.Previous.NumDomains()) // no rehashing while it fills
	}
	src := hostfs.Pos{File: t.Name}
	mine := packDomainInfo(b.source(t.Name), 0, alias)
	var targets map[string]string // alias domain → target, from the lookup results
	add := func(name, target string) {
		b.addDomain(name, alias, src)
		if target == "" {
			return
		}
		n, err1 := normalizeDomain(name)
		t, err2 := normalizeDomain(target)
		if err1 == nil && err2 == nil && n != t {
			if targets == nil {
				targets = map[string]string{}
			}
			targets[n] = t
		}
	}
	undo := func() {
		b.deleteListed(mine)
		clear(targets)
	}
	err = tab.EachDomain(ctx, add, undo)
	if err != nil {
		undo()
	}
	switch {
	case errors.Is(err, sqltable.ErrNoListing) || errors.Is(err, ldaptable.ErrNoListing):
		b.warn("%s: %s: %v; each domain is looked up in the database when a client asks", param, where, err)
		b.snap.listed = false
		// Reading the alias_domain table below also tells the per-request
		// lookups once whether there is one.
	case err != nil:
		b.snap.listed = false
		b.snap.unreachable = append(b.snap.unreachable, t.Name)
		if n := b.carryForward(t.Name, alias); n > 0 {
			b.warn("%s: %s: %v; serving the %d domains it listed before, and looking up others when a client asks", param, where, err, n)
			return
		}
		b.warn("%s: %s: %v; its domains are looked up when a client asks", param, where, err)
		return
	}
	for a, target := range targets {
		b.setAliasOf(a, target)
	}
	if aliases == nil {
		return
	}
	all, err := aliases.AliasTargets(ctx)
	switch {
	case errors.Is(err, sqltable.ErrNoAliasTable):
	case err != nil:
		b.warn("%s: %s: reading alias domains: %v", param, where, err)
	default:
		for a, target := range all {
			if _, ok := targets[a]; !ok {
				b.setAliasOf(a, target)
			}
		}
	}
}

// setAliasOf records that domain a stands for target, if both turn out
// hosted (applyAliases); the first table to say so wins.
func (b *builder) setAliasOf(a, target string) {
	a, target = strings.ToLower(a), strings.ToLower(target)
	if _, ok := b.aliasCand[a]; !ok && a != target {
		if b.aliasCand == nil {
			b.aliasCand = map[string]string{}
		}
		b.aliasCand[a] = target
	}
}

// applyAliases keeps the alias targets whose alias and target are both
// hosted: a table whose lookup answers with some other domain (a
// transport, a mail server's name) does not make clients log in there.
func (b *builder) applyAliases() {
	for a, target := range b.aliasCand {
		_, aliasOK := b.snap.domains.get(a)
		_, targetOK := b.snap.domains.get(target)
		if aliasOK && targetOK {
			b.setAlias(a, target)
		}
	}
}

// tableUnreadable handles a lookup table whose file exists but cannot be
// read now (its mode, or the service user's groups, changed): an outage
// like a database that is down, not an empty table. The domains the
// previous Snapshot had from it are kept, with a warning that carries the
// permission hint; a missing file (the table was removed) is not for here.
func (b *builder) tableUnreadable(param, where, file string, alias bool, err error) {
	b.snap.listed = false
	b.snap.unreachable = append(b.snap.unreachable, file)
	if errors.Is(err, fs.ErrNotExist) {
		b.warn("%s: %s: %v", param, where, withHint(err))
		return
	}
	if n := b.carryForward(file, alias); n > 0 {
		b.warn("%s: %s: %v; serving the %d domains it listed before until it can be read", param, where, withHint(err), n)
		return
	}
	b.warn("%s: %s: %v", param, where, withHint(err))
}

// carryForward adds the domains the previous Snapshot had from the table
// at host path source, for a table that cannot be listed now (its
// database is down, its file cannot be read), with the lines they were
// listed at, and returns how many it added.
func (b *builder) carryForward(source string, alias bool) int {
	prev := b.previous()
	if prev == nil {
		return 0
	}
	n := 0
	for name, i := range prev.domains.all() {
		if prev.sources[i.source()] != source {
			continue
		}
		b.addDomain(name, alias, hostfs.Pos{File: source, Line: i.line()})
		if target := prev.aliasOf[name]; target != "" {
			b.setAlias(name, target) // the names are copied: prev may go
		}
		n++
	}
	return n
}

// previous returns the Snapshot whose domains a table that cannot be
// listed keeps: Options.Previous, or what Options.PreviousFunc returns,
// asked once.
func (b *builder) previous() *Snapshot {
	if b.opt.Previous == nil && b.opt.PreviousFunc != nil {
		b.opt.Previous = b.opt.PreviousFunc()
		b.opt.PreviousFunc = nil
	}
	return b.opt.Previous
}
