package ldaptable

import (
	"fmt"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/lookupkey"
)

// templates are a table's search_base and query_filter, with what they and
// result_format need from keys and values (lookupkey.Templates: Postfix
// gathers the needs of the three in one context, so %D in result_format
// suppresses the search for a key without a domain, as %d in query_filter
// does).
type templates struct {
	*lookupkey.Templates
	base, filter string
	dynamicBase  bool // the search base depends on the key
}

func parseTemplates(base, filter, result string) (*templates, error) {
	lt, err := lookupkey.Parse(result,
		lookupkey.Search{Param: "search_base", Format: base},
		lookupkey.Search{Param: "query_filter", Format: filter})
	if err != nil {
		return nil, err
	}
	return &templates{Templates: lt, base: base, filter: filter, dynamicBase: lookupkey.HasExpansions(base)}, nil
}

// quoteFilter escapes a key for an LDAP search filter as Postfix's
// rfc2254_quote does: '*', '(', ')' and '\' become \XX (RFC 4515). A NUL
// byte never reaches it: Postfix keys are C strings, and Lookup refuses
// keys with NUL.
func quoteFilter(s string) string { return quoteBytes(s, "*()\\") }

// quoteDN escapes a key for the search base as Postfix's rfc2253_quote
// does: space, tab, '"', '#', '+', ',', ';', '<', '>' and '\' become \XX
// everywhere in the value, which RFC 4514 allows.
func quoteDN(s string) string { return quoteBytes(s, " \t\"#+,;<>\\") }

func quoteBytes(s, special string) string {
	if !strings.ContainsAny(s, special) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(special, s[i]) >= 0 {
			fmt.Fprintf(&b, "\\%02X", s[i])
		} else {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
