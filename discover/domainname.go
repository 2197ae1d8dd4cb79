package discover

import (
	"strings"

	"github.com/mailautoconf/mailautoconf/internal/domainname"
)

// normalizeDomain returns a table entry as lower-case A-labels, or an error
// when it is not a domain a mail client could use: a single label
// (PostfixAdmin's "ALL" marker, "localhost"), or not a valid host name.
func normalizeDomain(name string) (string, error) {
	return domainname.Normalize(strings.TrimSuffix(strings.TrimSpace(name), "."))
}
