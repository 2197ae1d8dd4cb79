package discover

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/mysqltable"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
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
	if len(b.snap.domains) == 0 && len(b.snap.lookups) == 0 {
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
	if prev, ok := b.snap.domains[d]; ok {
		if prev.alias() && !alias { // a mailbox domain wins over an alias listing
			b.snap.domains[d] = info
		}
		return
	}
	b.snap.domains[b.intern(d)] = info
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
		if err != nil {
			b.warn("%s: %s: %v", param, where, withHint(err))
			b.snap.listed = false
			return
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
	case "mysql":
		b.addMySQL(ctx, param, alias, t)
	default:
		b.warn("%s: %s: %s tables cannot be read yet: their domains are not served", param, where, t.Type)
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

func (b *builder) addMySQL(ctx context.Context, param string, alias bool, t postfix.Table) {
	where := fmt.Sprintf("%s (%s)", t.Raw, t.Pos)
	b.read(t.Name)
	use := tableUse{t.Name, alias}
	if b.mysqlSeen[use] {
		return // listed twice with the same meaning: nothing more to learn
	}
	b.mysqlSeen[use] = true
	cf, err := postfix.LoadMySQLTable(b.opt.Root, t.Name)
	if err == nil {
		b.read(cf.OptionFile, cf.TLSCertFile, cf.TLSKeyFile, cf.TLSCAFile)
		if cf.OptionFile == "" && cf.OptionGroup != "" {
			b.read("/etc/my.cnf", "/etc/mysql/my.cnf") // what libmariadb reads then
		}
	}
	if err != nil {
		b.warn("%s: %s: %v", param, where, withHint(err))
		b.snap.listed = false
		return
	}
	tab, err := mysqltable.Open(cf, b.opt.MySQL)
	if err != nil {
		b.warn("%s: %s: %v", param, where, err)
		b.snap.listed = false
		return
	}
	b.snap.closers = append(b.snap.closers, tab.Close)
	// Even a listed table is asked about a domain its listing lacked: one
	// added since (in an admin panel) is then served on the next request.
	b.snap.lookups = append(b.snap.lookups, domainLookup{source: t.Name, alias: alias, hosts: tab.Hosts})

	// The listing is streamed into the snapshot's map, never held whole
	// (a million domains). What this table added is taken out again when
	// the listing fails part-way or starts over on the next database host:
	// the entries carrying exactly this source and kind. (They are all its
	// own: mailbox tables are read before alias tables, so it never takes
	// over another table's entry, and a table used twice the same way is
	// read once.)
	if len(b.snap.domains) == 0 && b.opt.Previous != nil {
		b.snap.domains = make(map[string]domainInfo, b.opt.Previous.NumDomains()) // no rehashing while it fills
	}
	src := hostfs.Pos{File: t.Name}
	mine := packDomainInfo(b.source(t.Name), 0, alias)
	add := func(name string) { b.addDomain(name, alias, src) }
	undo := func() {
		for name, info := range b.snap.domains {
			if info == mine {
				delete(b.snap.domains, name)
			}
		}
	}
	err = tab.EachDomain(ctx, add, undo)
	if err != nil {
		undo()
	}
	switch {
	case errors.Is(err, mysqltable.ErrNoListing):
		b.warn("%s: %s: %v; each domain is looked up in the database when a client asks", param, where, err)
		b.snap.listed = false
		return
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
	targets, err := tab.AliasTargets(ctx)
	switch {
	case errors.Is(err, mysqltable.ErrNoAliasTable):
	case err != nil:
		b.warn("%s: %s: reading alias domains: %v", param, where, err)
	default:
		for a, target := range targets {
			a, target = strings.ToLower(a), strings.ToLower(target)
			if _, ok := b.snap.domains[a]; ok && a != target {
				b.snap.aliasOf[a] = target
			}
		}
	}
}

// carryForward adds the domains the previous Snapshot had from the table
// at host path source, for a table that cannot be listed now (its
// database is down), and returns how many it added.
func (b *builder) carryForward(source string, alias bool) int {
	prev := b.opt.Previous
	if prev == nil {
		return 0
	}
	n := 0
	src := hostfs.Pos{File: source}
	for name, i := range prev.domains {
		if i.line() != 0 || prev.sources[i.source()] != source {
			continue
		}
		b.addDomain(name, alias, src)
		if target := prev.aliasOf[name]; target != "" {
			b.snap.aliasOf[name] = target
		}
		n++
	}
	return n
}
