package discover

import (
	"context"
	"fmt"
	"time"
)

// A changeChecker is a domain table that can tell, cheaply, whether
// listing it again could give another answer (sqltable.Table.Changed,
// ldaptable.Table.Changed).
type changeChecker interface {
	Changed(ctx context.Context) (bool, error)
}

// HasTables reports whether some of the Snapshot's domains come from a
// database or directory (mysql, pgsql, sqlite, ldap tables): what the file
// watcher cannot see change.
func (s *Snapshot) HasTables() bool { return len(s.lookups) > 0 || len(s.unreachable) > 0 }

// TablesChanged reports whether building the Snapshot again could list
// other domains from its database tables than it holds, and why ("" when
// not): a table that could not be listed, one that cannot tell, or one
// whose cheap change check says its rows changed (see the Changed methods
// of sqltable and ldaptable). Files are not its business: the file watcher
// sees them. An error (a server down) comes with true: only a rebuild
// carries the known domains forward and tells the outage.
func (s *Snapshot) TablesChanged(ctx context.Context) (changed bool, why string, err error) {
	if len(s.unreachable) > 0 {
		return true, fmt.Sprintf("%d tables could not be listed", len(s.unreachable)), nil
	}
	for _, l := range s.lookups {
		c, ok := l.table.(changeChecker)
		if !ok {
			return true, l.source + " cannot tell its changes", nil
		}
		changed, err := c.Changed(ctx)
		if err != nil {
			return true, l.source + " cannot be checked", err
		}
		if changed {
			return true, l.source + " changed", nil
		}
	}
	return false, "", nil
}

// StaleAt returns the first time after since at which a rebuild would say
// something else with no file or table changed, because of the clock
// alone: a certificate comes within certExpirySoon of its end, or expires.
// It is the zero Time when nothing the Snapshot holds depends on the clock.
func (s *Snapshot) StaleAt(since time.Time) time.Time {
	var first time.Time
	for _, c := range s.certs {
		end, err := time.Parse(time.RFC3339, c.NotAfter)
		if err != nil {
			continue
		}
		// Problems compares with After and Sub: one second later is on
		// the other side for both.
		for _, at := range []time.Time{end.Add(-certExpirySoon + time.Second), end.Add(time.Second)} {
			if at.After(since) && (first.IsZero() || at.Before(first)) {
				first = at
			}
		}
	}
	return first
}
