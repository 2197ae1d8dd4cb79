package ldaptable

import (
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/slapdtest"
)

// The differential tests' directory, under dc=example,dc=com of a server
// started with slapdtest's default template. Values are written base64 in
// the LDIF, so any byte goes.

// keyValues are the cn values of ou=Keys: one entry each, uid=k<i>, with
// description "d:<value>" (alias.example.com answers example.com).
var keyValues = []string{
	"example.com", "alias.example.com", "user", "user@example.com", "com", "example", "mail", "x.y",
	"a@b@mail.example.com", "o'brien", `back\slash`, `dq"x`, "*", "a*b", "(paren)", "a(b)c", `\\`,
	"*)(objectclass=*", "strasse", "straße", "äbc", "i\u0307", "ÿ", "a,b", "#x", "x y", "x+y", "a;b",
	"<>", "%s", "100%", "a=b", `k\2a`, "é@é.com", "mail.example.com", "b@mail.example.com", "shop.example.net",
}

// dnValues are the cn values of ou=DNs entries (the RDN is the value).
var dnValues = []string{
	"a,b", "#x", "x y", "x+y", "a;b", "<>", `dq"x`, `back\slash`, "example.com", "äbc", "user@example.com", "=",
}

type ldifEntry struct {
	dn    string
	attrs [][2]string
}

func (e ldifEntry) String() string {
	var b strings.Builder
	b.WriteString("dn:: " + base64.StdEncoding.EncodeToString([]byte(e.dn)) + "\n")
	for _, a := range e.attrs {
		b.WriteString(a[0] + ":: " + base64.StdEncoding.EncodeToString([]byte(a[1])) + "\n")
	}
	return b.String()
}

func entry(dn string, kv ...string) ldifEntry {
	e := ldifEntry{dn: dn}
	for i := 0; i+1 < len(kv); i += 2 {
		e.attrs = append(e.attrs, [2]string{kv[i], kv[i+1]})
	}
	return e
}

// dnEscape escapes every byte of an RDN value but letters and digits as
// \XX, which RFC 4514 always allows.
func dnEscape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if isAlpha(c) || isDigit(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\%02X", c)
		}
	}
	return b.String()
}

const (
	keysBase = "ou=Keys,dc=example,dc=com"
	lookupDN = "cn=lookup,dc=example,dc=com"
	lookupPW = "s3cret"
)

func keyDN(i int) string { return fmt.Sprintf("uid=k%d,%s", i, keysBase) }

func keyIndex(v string) int {
	for i, k := range keyValues {
		if k == v {
			return i
		}
	}
	panic("no key entry " + v)
}

func datasetLDIF() string {
	inet := func(uid string, kv ...string) ldifEntry {
		return entry("uid="+uid+","+keysBase, append([]string{"objectClass", "inetOrgPerson", "uid", uid, "sn", "x"}, kv...)...)
	}
	es := []ldifEntry{
		entry("dc=example,dc=com", "objectClass", "dcObject", "objectClass", "organization", "dc", "example", "o", "example"),
		entry(lookupDN, "objectClass", "person", "cn", "lookup", "sn", "lookup", "userPassword", lookupPW),
		entry(keysBase, "objectClass", "organizationalUnit", "ou", "Keys", "description", "the keys"),
		entry("ou=DNs,dc=example,dc=com", "objectClass", "organizationalUnit", "ou", "DNs"),
		entry("ou=Aliases,dc=example,dc=com", "objectClass", "organizationalUnit", "ou", "Aliases"),
	}
	for i, v := range keyValues {
		desc := "d:" + v
		if v == "alias.example.com" {
			desc = "example.com"
		}
		es = append(es, inet(fmt.Sprintf("k%d", i), "cn", v, "description", desc, "title", "t:"+v))
	}
	user := keyDN(keyIndex("user"))
	es = append(es,
		inet("group1", "cn", "group1", "description", "d:group1", "title", "t:group1", "mail", "group1@x.y",
			"seeAlso", user, "seeAlso", "uid=missing,"+keysBase),
		inet("group2", "cn", "group2", "description", "d:group2",
			"labeledURI", "ldap:///"+keysBase+"?description?one?(cn=user)"),
		inet("group3", "cn", "group3", "description", "d:group3", "title", "t:group3", "seeAlso", "uid=group1,"+keysBase),
		inet("group4", "cn", "group4", "description", "d:group4",
			"labeledURI", "ldap:///"+keysBase+"??sub?(|(cn=com)(cn=example))",
			"labeledURI", "ldap:///uid=group1,"+keysBase,
			"labeledURI", "ldap:///"+keysBase+"?title,cn?one?(cn=x.y)"),
		inet("group5", "cn", "group5", "mail", "group5@x.y", "description", "d:group5", "seeAlso", user),
		inet("loop", "cn", "loop", "description", "d:loop", "seeAlso", "uid=loop,"+keysBase),
		inet("dup1", "cn", "dup", "description", "d:dup1"),
		inet("dup2", "cn", "dup", "description", "d:dup2"),
		inet("multi", "cn", "multi", "description", "m1", "description", "m2", "description", "m3"),
		inet("nul", "cn", "nul", "description", "d:nul", "userPassword", "a\x00b"),
		inet("ff", "cn", "ff", "description", "d:ff", "userPassword", "\xff"),
		inet("comma", "cn", "comma", "description", "a,b", "description", "c"),
		inet("latecomer1", "cn", "late", "description", "d:late", "title", "t:late"),
		entry("uid=al1,ou=Aliases,dc=example,dc=com", "objectClass", "alias", "objectClass", "extensibleObject",
			"uid", "al1", "aliasedObjectName", keyDN(keyIndex("example.com"))),
		entry("uid=plain,ou=Aliases,dc=example,dc=com", "objectClass", "inetOrgPerson", "uid", "plain", "sn", "x",
			"cn", "user", "description", "d:plain"),
	)
	for _, v := range dnValues {
		es = append(es, entry("cn="+dnEscape(v)+",ou=DNs,dc=example,dc=com", "objectClass", "person", "cn", v, "sn", "x",
			"description", "dn:"+v))
	}
	var b strings.Builder
	for _, e := range es {
		b.WriteString(e.String() + "\n")
	}
	return b.String()
}

var dataset struct {
	once sync.Once
}

// datasetServer returns the shared server holding the dataset.
func datasetServer(t testing.TB) *slapdtest.Server {
	t.Helper()
	s := slapdtest.Shared(t, slapdtest.Config{})
	dataset.once.Do(func() { s.Add(t, datasetLDIF()) })
	return s
}
