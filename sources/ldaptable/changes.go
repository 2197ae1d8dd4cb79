package ldaptable

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"

	"github.com/go-ldap/ldap/v3"
)

// Change checks: a daemon that serves a table's listing asks Changed every
// minute or so whether listing it again could give another answer, and
// lists it again only then. A listing is one search for the candidate
// entries and then one lookup per candidate: the lookups are what costs,
// and Changed needs none of them.
//
// Two checks, the cheap one first:
//
//   - contextCSN, the change sequence number of the naming context that
//     holds search_base, which OpenLDAP's syncprov overlay (there wherever
//     replication is) moves on every write to the database. Unchanged:
//     nothing changed. It moves for writes no listing cares about too (a
//     password change), so when it moved, the second check decides.
//   - a digest of the listing search itself, asked with the operational
//     attributes modifyTimestamp and entryCSN (whenChanged and uSNChanged
//     for Active Directory): every entry's DN and every value, summed in
//     any order. An entry added, deleted, changed or no longer matching
//     the listing filter changes it. EachDomain computes it from the search
//     it runs anyway.
//
// What the digest cannot see: a lookup that follows a DN
// (special_result_attribute, leaf_result_attribute) reads entries outside
// the listing search, and a change there alone, on a server without
// contextCSN, is seen only when the table is listed again for another
// reason. A domain added is served before that anyway: a snapshot looks up
// per request the domains its listing lacks.

// changeAttrs are the operational attributes the listing search asks for
// besides the key attributes, so that its digest sees any change of an
// entry.
var changeAttrs = []string{"modifyTimestamp", "entryCSN", "whenChanged", "uSNChanged"}

func isChangeAttr(name string) bool {
	return slices.ContainsFunc(changeAttrs, func(a string) bool { return strings.EqualFold(a, name) })
}

// changeState is what the Table's listing read, for Changed.
type changeState struct {
	mu     sync.Mutex
	listed bool // EachDomain searched the directory
	l      *listing
	csn    string // contextCSN before the listing; "": the server keeps none
	digest digest
}

// A digest sums the entries of a search: their count and the sum of a
// hash of each entry's DN and values, in any order.
type digest struct {
	n   int
	sum uint64
}

func digestOf(entries []*ldap.Entry) digest {
	d := digest{n: len(entries)}
	for _, e := range entries {
		h := fnv.New64a()
		h.Write([]byte(strings.ToLower(e.DN)))
		attrs := slices.Clone(e.Attributes)
		slices.SortFunc(attrs, func(a, b *ldap.EntryAttribute) int {
			return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
		})
		for _, a := range attrs {
			h.Write([]byte{0})
			h.Write([]byte(strings.ToLower(a.Name)))
			vals := slices.Clone(a.ByteValues)
			slices.SortFunc(vals, func(x, y []byte) int { return strings.Compare(string(x), string(y)) })
			for _, v := range vals {
				var n [8]byte
				binary.BigEndian.PutUint64(n[:], uint64(len(v)))
				h.Write(n[:])
				h.Write(v)
			}
		}
		d.sum += h.Sum64()
	}
	return d
}

// contextCSN returns the contextCSN values of the naming context that holds
// base, "" when the server has none (no syncprov) or does not say.
func (t *Table) contextCSN(ctx context.Context, c *ldap.Conn, base string) string {
	all, _ := parseFilter("(objectClass=*)")
	root, err := t.search(ctx, c, "", ldap.ScopeBaseObject, all, []string{"namingContexts"})
	if err != nil || len(root) == 0 {
		return ""
	}
	bdn, err := ldap.ParseDN(base)
	if err != nil {
		return ""
	}
	best, bestLen := "", -1
	for _, nc := range root[0].GetAttributeValues("namingContexts") {
		ndn, err := ldap.ParseDN(nc)
		if err != nil || len(ndn.RDNs) <= bestLen {
			continue
		}
		if ndn.EqualFold(bdn) || ndn.AncestorOfFold(bdn) {
			best, bestLen = nc, len(ndn.RDNs)
		}
	}
	if bestLen < 0 {
		return ""
	}
	e, err := t.search(ctx, c, best, ldap.ScopeBaseObject, all, []string{"contextCSN"})
	if err != nil || len(e) == 0 {
		return ""
	}
	csn := slices.Clone(e[0].GetAttributeValues("contextCSN"))
	slices.Sort(csn)
	return strings.Join(csn, " ")
}

// Changed reports whether listing the table again (EachDomain) could give
// another answer than the listing this Table ran, as far as a cheap check
// tells (see the comment above changeAttrs). A Table that listed nothing
// reports no change. An error (the server is down) comes with changed
// true: only listing again tells what to serve then.
func (t *Table) Changed(ctx context.Context) (changed bool, err error) {
	t.changes.mu.Lock()
	defer t.changes.mu.Unlock()
	st := &t.changes
	if !st.listed {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.listingTimeout)
	defer cancel()
	err = t.do(ctx, func(c *ldap.Conn) error {
		csn := ""
		if st.csn != "" {
			if csn = t.contextCSN(ctx, c, st.l.base); csn == st.csn {
				changed = false
				return nil
			}
		}
		entries, err := t.searchPaged(ctx, c, st.l.base, st.l.filter, append(slices.Clone(st.l.attrs), changeAttrs...))
		if ldapCode(err) >= 0 {
			return describe("change check", err)
		} else if err != nil {
			return err
		}
		changed = digestOf(entries) != st.digest
		if !changed && csn != "" {
			st.csn = csn // the write was elsewhere: cheap again next time
		}
		return nil
	})
	if err != nil {
		return true, fmt.Errorf("ldap %s: %w", t.path, err)
	}
	return changed, nil
}
