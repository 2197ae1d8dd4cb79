package discover

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"
)

// normalizeDomain returns name as lower-case A-labels, or an error when it
// is not a domain a mail client could use: fewer than two labels (PostfixAdmin's
// "ALL" marker, "localhost"), or not a valid host name.
func normalizeDomain(name string) (string, error) {
	name = strings.TrimSuffix(strings.TrimSpace(name), ".")
	if name == "" {
		return "", errors.New("empty name")
	}
	a, err := idna.Lookup.ToASCII(name)
	if err != nil {
		return "", fmt.Errorf("not a valid domain name: %w", err)
	}
	a = strings.ToLower(a)
	if len(a) > 253 {
		return "", errors.New("longer than 253 characters")
	}
	labels := strings.Split(a, ".")
	if len(labels) < 2 {
		return "", errors.New("a single label is not a mail domain")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("bad label %q", l)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("bad character %q", c)
			}
		}
	}
	return a, nil
}
