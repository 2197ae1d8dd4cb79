package ldaptable

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
	"github.com/mailautoconf/mailautoconf/sources/lookupkey"
	"github.com/mailautoconf/mailautoconf/sources/postfix"
)

// Options tune how a Table reaches its servers.
type Options struct {
	// Root reads TLS files and "domain" list files. The zero value reads
	// the real file system.
	Root hostfs.Root
	// Override, when set, replaces every server_host of the table by this
	// LDAP URL (a test and inspection aid: the CLI's --ldap-uri).
	Override string
	// ConnectTimeout bounds connecting to one server, STARTTLS and the
	// bind included; default 2s, and never more than the table's timeout.
	// While other servers remain to be tried, a connection gets no more
	// than its share of the caller's deadline.
	ConnectTimeout time.Duration
	// QueryTimeout bounds one search on one server; default 5s, and never
	// more than the table's timeout.
	QueryTimeout time.Duration
	// ListingTimeout bounds a whole EachDomain; default 2m.
	ListingTimeout time.Duration
	// SMTPUTF8Disabled tells that main.cf sets smtputf8_enable = no.
	// Postfix then lower-cases only the ASCII letters of a key ("ÄBC"
	// becomes "Äbc", "Straße" stays), where by default it case folds the
	// whole key ("äbc", "strasse").
	SMTPUTF8Disabled bool
}

// A Table is an opened Postfix LDAP lookup table. Its methods are safe for
// concurrent use.
type Table struct {
	path    string
	tmpl    *templates
	scope   int
	deref   int
	domain  []string
	root    hostfs.Root
	servers []*server

	// attrs are the attributes every search asks for, in Postfix's order:
	// terminal, leaf, ordinary, then special ones.
	attrs                               []string
	numTerminal, numLeaf, numAttributes int

	bind           string // "yes" or "no"
	bindDN, bindPW string
	version        int
	startTLS       bool
	tlsFiles       tlsFiles
	tlsOnce        sync.Once
	tls            *tls.Config
	tlsErr         error

	timeout        time.Duration // the table's timeout; negative: none
	timeLimit      int           // the time limit sent with each search, in seconds
	sizeLimit      int
	expansionLimit int
	recursionLimit int

	connectTimeout time.Duration
	queryTimeout   time.Duration
	listingTimeout time.Duration
	asciiFold      bool // keys are folded in ASCII only (smtputf8_enable = no)

	closed atomic.Bool

	changes changeState // what the listing read, for Changed (changes.go)
}

// Open prepares the table cf for lookups: it checks the templates and the
// servers but does no I/O. TLS files are read when a connection first
// needs them, as libldap does.
//
// Servers are tried in the order server_host lists them; a server that
// cannot be reached (or whose ldaps:// handshake fails) makes the call go
// on with the next, and is tried after the others for a minute. Each
// server's connection is shared by concurrent calls; one found broken is
// replaced once within the call, so a server that went away and came back
// is used again at once.
func Open(cf *postfix.LDAPTable, opt Options) (*Table, error) {
	fail := func(err error) (*Table, error) { return nil, fmt.Errorf("ldap %s: %w", cf.Path, err) }
	if opt.ConnectTimeout <= 0 {
		opt.ConnectTimeout = 2 * time.Second
	}
	if opt.QueryTimeout <= 0 {
		opt.QueryTimeout = 5 * time.Second
	}
	if opt.ListingTimeout <= 0 {
		opt.ListingTimeout = 2 * time.Minute
	}
	if cf.Bind == "sasl" {
		return fail(fmt.Errorf("%s: bind = sasl is not supported yet", cf.Pos["bind"]))
	}
	tmpl, err := parseTemplates(cf.SearchBase, cf.QueryFilter, cf.ResultFormat)
	if err != nil {
		return fail(err)
	}
	t := &Table{
		path:           cf.Path,
		tmpl:           tmpl,
		domain:         cf.Domain,
		root:           opt.Root,
		deref:          cf.Dereference,
		bind:           cf.Bind,
		bindDN:         cf.BindDN,
		bindPW:         cf.BindPW,
		version:        cf.Version,
		startTLS:       cf.StartTLS,
		sizeLimit:      cf.SizeLimit,
		expansionLimit: cf.ExpansionLimit,
		recursionLimit: cf.RecursionLimit,
		connectTimeout: opt.ConnectTimeout,
		queryTimeout:   opt.QueryTimeout,
		listingTimeout: opt.ListingTimeout,
		asciiFold:      opt.SMTPUTF8Disabled,
		tlsFiles: tlsFiles{caFile: cf.TLSCACertFile, caDir: cf.TLSCACertDir,
			cert: cf.TLSCert, key: cf.TLSKey, require: cf.TLSRequireCert},
	}
	if t.version == 0 {
		t.version = 3
	}
	if t.recursionLimit <= 0 {
		t.recursionLimit = 1000
	}
	switch {
	case cf.Timeout > 0:
		t.timeout = time.Duration(cf.Timeout) * time.Second
		t.timeLimit = cf.Timeout
		t.queryTimeout = min(t.queryTimeout, t.timeout)
	case cf.Timeout < 0:
		t.timeout = -1
	}
	switch cf.Scope {
	case "base":
		t.scope = ldap.ScopeBaseObject
	case "one":
		t.scope = ldap.ScopeSingleLevel
	default:
		t.scope = ldap.ScopeWholeSubtree
	}
	t.attrs = append(t.attrs, cf.TerminalResultAttribute...)
	t.numTerminal = len(t.attrs)
	t.attrs = append(t.attrs, cf.LeafResultAttribute...)
	t.numLeaf = len(t.attrs) - t.numTerminal
	t.attrs = append(t.attrs, cf.ResultAttribute...)
	t.numAttributes = len(t.attrs)
	t.attrs = append(t.attrs, cf.SpecialResultAttribute...)

	urls := cf.Servers
	if opt.Override != "" {
		urls = []string{opt.Override}
	}
	if len(urls) == 0 {
		return fail(errors.New("no usable server_host"))
	}
	for _, u := range urls {
		s, err := newServer(u)
		if err != nil {
			return fail(err)
		}
		if (s.ldaps || s.network == "unix") && t.version != 3 {
			t.version = 3 // as Postfix does for a URL other than ldap://
		}
		t.servers = append(t.servers, s)
	}
	return t, nil
}

// Close closes the table's connections; later calls fail.
func (t *Table) Close() error {
	t.closed.Store(true)
	for _, s := range t.servers {
		s.close()
	}
	return nil
}

// Path returns the host path of the lookup file.
func (t *Table) Path() string { return t.path }

// Endpoints returns the servers the table connects to, in the order
// server_host lists them, as LDAP URLs ("ldap://127.0.0.1:389", "ldapi://%2Frun%2Fslapd%2Fldapi").
func (t *Table) Endpoints() []string {
	out := make([]string, len(t.servers))
	for i, s := range t.servers {
		out[i] = s.url
	}
	return out
}

// A dataError is a lookup that failed because of what the directory holds
// (more results than expansion_limit, more entries than size_limit, a
// special attribute nested deeper than recursion_limit, a value that is not
// UTF-8), not because of a server: Postfix fails that lookup only.
type dataError struct{ err error }

func (e *dataError) Error() string { return e.err.Error() }
func (e *dataError) Unwrap() error { return e.err }

// Lookup returns what Postfix's lookup of key in the table returns, the
// answer of "postmap -q key ldap:file" split at the commas Postfix joins
// the values with: the values of the result attributes of every entry
// found (DN and URL special attributes followed), each formatted with
// result_format; nil when nothing is found or Postfix does not search for
// this key at all. The key is case folded first, as Postfix does (ASCII
// lower-cased, other UTF-8 case folded unless Options.SMTPUTF8Disabled); a
// key that is not UTF-8 or holds a NUL byte is never looked up. The key is escaped into the filter as
// Postfix does (RFC 4515), so no key can change the filter's structure.
//
// An error names the table and the server; a wrong bind password reads
// "access denied", an unreachable server "unreachable". A lookup Postfix
// fails with a temporary error (expansion_limit or size_limit exceeded, a
// search error) is an error here too.
func (t *Table) Lookup(ctx context.Context, key string) ([]string, error) {
	key, ok := t.fold(key)
	if !ok {
		return nil, nil
	}
	if ok, err := t.eligible(key); !ok || err != nil {
		return nil, err
	}
	// A key the templates cannot be expanded with is not searched for,
	// and no server is asked at all (the differential test with a dead
	// server shows Postfix 3.7 does not connect for it either).
	base, ok := t.tmpl.Expand(t.tmpl.base, key, quoteDN)
	if !ok {
		return nil, nil
	}
	text, ok := t.tmpl.Expand(t.tmpl.filter, key, quoteFilter)
	if !ok {
		return nil, nil
	}
	var out []string
	err := t.do(ctx, func(c *ldap.Conn) error {
		f, err := parseFilter(text)
		if err != nil {
			return fmt.Errorf("filter %q: %w", text, err)
		}
		out = out[:0]
		entries, err := t.search(ctx, c, base, t.scope, f, t.attrs)
		switch {
		case ldapCode(err) == ldap.LDAPResultNoSuchObject && t.tmpl.dynamicBase:
			return nil // a base made from the key that does not exist: not found
		case ldapCode(err) == ldap.LDAPResultNoSuchObject:
			return describe(fmt.Sprintf("search base %q not found", base), err)
		case ldapCode(err) >= 0:
			if ldapCode(err) == ldap.LDAPResultSizeLimitExceeded {
				return &dataError{describe(fmt.Sprintf("size_limit %d exceeded", t.sizeLimit), err)}
			}
			return describe("search", err)
		case err != nil:
			return err
		}
		st := &values{t: t, ctx: ctx, c: c, key: key}
		st.walk(entries, 1)
		out = st.out
		return st.err
	})
	if err != nil {
		return nil, err
	}
	if strings.Join(out, ",") == "" {
		return nil, nil // Postfix returns a result only when its text is not empty
	}
	for _, v := range out {
		if !utf8.ValidString(v) {
			return nil, &dataError{fmt.Errorf("ldap %s: key %q: value %q is not UTF-8 (Postfix fails the lookup)", t.path, key, v)}
		}
	}
	return out, nil
}

// fold folds a lookup key as Postfix does (see Options.SMTPUTF8Disabled);
// ok is false for a key Postfix never looks up.
func (t *Table) fold(key string) (folded string, ok bool) {
	if t.asciiFold {
		return lookupkey.FoldASCII(key)
	}
	return lookupkey.Fold(key)
}

// eligible reports whether Postfix searches for the (folded) key at all,
// as far as the "domain" restriction decides.
func (t *Table) eligible(key string) (bool, error) {
	ok, err := lookupkey.CheckDomain(t.root, t.domain, key)
	if err != nil {
		return false, fmt.Errorf("ldap %s: %w", t.path, err)
	}
	return ok, nil
}

// search runs one search on c and returns its entries, within the query
// timeout and ctx. A server silent for the query timeout fails as a
// network error (the connection is dropped, as go-ldap's own timeout
// does); the end of ctx fails only this call.
func (t *Table) search(ctx context.Context, c *ldap.Conn, base string, scope int, f *filter, attrs []string) ([]*ldap.Entry, error) {
	req := ldap.NewSearchRequest(base, scope, t.deref, t.sizeLimit, t.timeLimit, false, f.String(), attrs, nil)
	qctx, cancel := context.WithTimeout(ctx, t.queryTimeout)
	defer cancel()
	type result struct {
		r   *ldap.SearchResult
		err error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := c.Search(req)
		ch <- result{r, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			return nil, res.err
		}
		return res.r.Entries, nil
	case <-qctx.Done():
		if ctx.Err() != nil {
			return nil, fmt.Errorf("search: %w", ctx.Err())
		}
		return nil, ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("search timed out after %s", t.queryTimeout))
	}
}

// values gathers the results of one lookup as Postfix's
// dict_ldap_get_values does.
type values struct {
	t         *Table
	ctx       context.Context
	c         *ldap.Conn
	key       string
	out       []string
	expansion int
	err       error
}

// attrValues returns the values of the first attribute of e named name (in
// any letter case, no subtypes), as libldap's ldap_get_values_len; nil when
// there is none.
func attrValues(e *ldap.Entry, name string) [][]byte {
	for _, a := range e.Attributes {
		if strings.EqualFold(a.Name, name) {
			if a.ByteValues == nil {
				return [][]byte{}
			}
			return a.ByteValues
		}
	}
	return nil
}

// subtype is Postfix's attrdesc_subtype: 1 when b is a or a subtype of a
// ("mail;lang-en" of "mail"), -1 when a is a subtype of b, else 0.
func subtype(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && lower(a[i]) == lower(b[i]) {
		i++
	}
	switch {
	case i == len(a) && (i == len(b) || b[i] == ';'):
		return 1
	case i == len(b) && i < len(a) && a[i] == ';':
		return -1
	}
	return 0
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// cString is what C code sees of an attribute value: the bytes before the
// first NUL.
func cString(v []byte) string {
	for i, c := range v {
		if c == 0 {
			return string(v[:i])
		}
	}
	return string(v)
}

// walk handles the entries of one search at the given recursion depth
// (1 for the lookup's own search). Like Postfix, it classifies each
// attribute by its place in the table's attribute list: terminal result
// attributes, when an entry has one, are all that entry yields; leaf result
// attributes are skipped in an entry with a special attribute; the values
// of special attributes are DNs (read with a base search) or LDAP URLs
// (searched), whose entries are walked in turn. The is-terminal and is-leaf
// state carries over from one entry to the next of the same search unless
// the next entry says otherwise, as in Postfix.
func (v *values) walk(entries []*ldap.Entry, depth int) {
	t := v.t
	isLeaf, isTerminal := true, false
	for n, e := range entries {
		if v.err == nil && t.sizeLimit != 0 && n+1 > t.sizeLimit {
			v.err = &dataError{fmt.Errorf("size_limit %d exceeded", t.sizeLimit)}
		}
		for i := 0; i < t.numTerminal; i++ {
			vals := attrValues(e, t.attrs[i])
			if vals == nil {
				continue
			}
			if isTerminal = len(vals) > 0; isTerminal {
				break
			}
		}
		if !isTerminal && t.numLeaf > 0 {
			for i := t.numAttributes; i < len(t.attrs); i++ {
				vals := attrValues(e, t.attrs[i])
				if vals == nil {
					continue
				}
				if isLeaf = len(vals) == 0; !isLeaf {
					break
				}
			}
		}
		for _, a := range e.Attributes {
			vals := attrValues(e, a.Name)
			if v.err != nil || len(vals) == 0 {
				continue
			}
			i := 0
			for i < len(t.attrs) && subtype(t.attrs[i], a.Name) <= 0 {
				i++
			}
			switch {
			case i < t.numAttributes || isTerminal:
				if isTerminal && i >= t.numTerminal || !isLeaf && i < t.numTerminal+t.numLeaf {
					continue // a non-terminal attribute of a terminal entry, a leaf attribute of a non-leaf one
				}
				for _, val := range vals {
					r, ok := t.tmpl.FormatResult(cString(val), v.key)
					if !ok {
						continue
					}
					v.out = append(v.out, r)
					if t.expansionLimit > 0 {
						if v.expansion++; v.expansion > t.expansionLimit {
							v.err = &dataError{fmt.Errorf("key %q: more than expansion_limit %d results", v.key, t.expansionLimit)}
							break
						}
					}
				}
			case i < len(t.attrs) && depth < t.recursionLimit:
				for _, val := range vals {
					v.follow(cString(val), depth)
					if v.err != nil {
						break
					}
				}
			case i < len(t.attrs):
				v.err = &dataError{fmt.Errorf("key %q: special attribute %s=%s nested deeper than recursion_limit %d",
					v.key, a.Name, cString(vals[0]), t.recursionLimit)}
			}
		}
	}
}

// follow reads what a special attribute value points to: the entry of a
// DN, or the entries an LDAP URL selects (only the table's result
// attributes the URL names, if it names any).
func (v *values) follow(val string, depth int) {
	t := v.t
	var entries []*ldap.Entry
	var err error
	if postfix.IsLDAPURL(val) {
		u, perr := postfix.ParseLDAPURL(val)
		if perr != nil {
			v.err = &dataError{fmt.Errorf("key %q: malformed URL %s: %v", v.key, val, perr)}
			return
		}
		attrs := t.urlAttrs(u.Attrs)
		if attrs == nil {
			return // no attribute of interest
		}
		scope := map[string]int{"": ldap.ScopeBaseObject, "base": ldap.ScopeBaseObject, "one": ldap.ScopeSingleLevel,
			"sub": ldap.ScopeWholeSubtree, "children": ldap.ScopeChildren}[u.Scope]
		filterText := u.Filter
		if filterText == "" {
			filterText = "(objectclass=*)"
		}
		f, ferr := parseFilter(filterText)
		if ferr != nil {
			v.err = fmt.Errorf("key %q: URL %s: filter: %w", v.key, val, ferr)
			return
		}
		entries, err = t.search(v.ctx, v.c, u.DN, scope, f, attrs)
	} else {
		entries, err = t.search(v.ctx, v.c, val, ldap.ScopeBaseObject, &filter{op: opPresent, attr: "objectclass"}, t.attrs)
	}
	switch code := ldapCode(err); {
	case err == nil:
		v.walk(entries, depth+1)
	case code == ldap.LDAPResultNoSuchObject:
		// Postfix: "DN not found, skipping".
	case code == ldap.LDAPResultSizeLimitExceeded:
		v.err = &dataError{describe(fmt.Sprintf("key %q: %s: size_limit %d exceeded", v.key, val, t.sizeLimit), err)}
	case code >= 0:
		v.err = describe(fmt.Sprintf("key %q: search %s", v.key, val), err)
	default:
		v.err = err
	}
}

// urlAttrs is Postfix's url_attrs: the table's attributes when the URL
// names none, else the URL's attributes that are (or are subtypes or
// supertypes of) the table's, the more specific form of each; nil when
// none remain.
func (t *Table) urlAttrs(urlAttrs []string) []string {
	if len(urlAttrs) == 0 {
		if len(t.attrs) == 0 {
			return []string{}
		}
		return t.attrs
	}
	var out []string
	for _, a1 := range urlAttrs {
		for _, a2 := range t.attrs {
			switch subtype(a1, a2) {
			case 1:
				out = append(out, a2)
			case -1:
				out = append(out, a1)
			}
		}
	}
	return out
}
