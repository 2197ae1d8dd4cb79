package discover

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// domainsOf returns a domainSet holding m.
func domainsOf(m map[string]domainInfo) domainSet {
	var d domainSet
	for name, i := range m {
		d.set(name, i)
	}
	return d
}

// toMap returns what d holds as a map.
func (d *domainSet) toMap() map[string]domainInfo {
	m := make(map[string]domainInfo, d.len())
	for name, i := range d.all() {
		m[name] = i
	}
	return m
}

// checkSet compares d with want and checks the table's invariants: the
// count, every name reachable from its home slot with no empty slot on
// the way, and all yielding each name once.
func checkSet(t *testing.T, what string, d *domainSet, want map[string]domainInfo) {
	t.Helper()
	if d.len() != len(want) {
		t.Errorf("%s: len %d, want %d", what, d.len(), len(want))
	}
	used := 0
	mask := len(d.refs) - 1
	for i, r := range d.refs {
		if d.infos[i] == 0 {
			continue
		}
		used++
		if h := d.hashOf(d.name(r)); d.infos[i]&slotMeta != slotTag(h) {
			t.Errorf("%s: %q in slot %d tagged %x, want %x", what, d.name(r), i, d.infos[i]&slotMeta, slotTag(h))
		}
		for j := int(d.hashOf(d.name(r))) & mask; j != i; j = (j + 1) & mask {
			if d.infos[j] == 0 {
				t.Errorf("%s: %q in slot %d, an empty slot (%d) between it and its home", what, d.name(r), i, j)
				break
			}
		}
	}
	if used != d.len() {
		t.Errorf("%s: %d slots used, len %d", what, used, d.len())
	}
	seen := map[string]int{}
	for name, i := range d.all() {
		seen[name]++
		if w, ok := want[name]; !ok || w != i {
			t.Errorf("%s: all yields %q = %x, want %x (%v)", what, name, i, w, ok)
		}
	}
	for name, w := range want {
		if seen[name] != 1 {
			t.Errorf("%s: all yields %q %d times", what, name, seen[name])
		}
		if got, ok := d.get(name); !ok || got != w {
			t.Errorf("%s: get(%q) = %x, %v; want %x", what, name, got, ok, w)
		}
	}
}

// TestDomainSet drives the probing code on a table of 8 slots with the
// names' home slots chosen, so that clusters collide and wrap around the
// end, and checks where each name ends up.
func TestDomainSet(t *testing.T) {
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61) // 253 bytes
	huge := strings.Repeat("x", 300)                                                                                                // over a length byte
	type op struct {
		op   string // "set", "del", "get"
		name string
		info domainInfo
		ok   bool // del: was there; get: found
	}
	tests := []struct {
		name  string
		homes map[string]uint64 // home slot of each name
		ops   []op
		slots map[int]string // where each name is at the end; other slots are empty
	}{
		{
			name:  "cluster wraps around the end",
			homes: map[string]uint64{"a": 6, "b": 6, "c": 7, "d": 0},
			ops:   []op{{op: "set", name: "a", info: 1}, {op: "set", name: "b", info: 2}, {op: "set", name: "c", info: 3}, {op: "set", name: "d", info: 4}},
			slots: map[int]string{0: "c", 1: "d", 6: "a", 7: "b"},
		},
		{
			name:  "delete at the head shifts the wrapped names back",
			homes: map[string]uint64{"a": 6, "b": 6, "c": 7, "d": 0},
			ops: []op{{op: "set", name: "a", info: 1}, {op: "set", name: "b", info: 2}, {op: "set", name: "c", info: 3}, {op: "set", name: "d", info: 4},
				{op: "del", name: "a", ok: true}, {op: "get", name: "d", info: 4, ok: true}, {op: "get", name: "a"}},
			slots: map[int]string{0: "d", 6: "b", 7: "c"},
		},
		{
			name:  "a name at its home stays",
			homes: map[string]uint64{"a": 6, "b": 6, "c": 0, "d": 1},
			ops: []op{{op: "set", name: "c", info: 3}, {op: "set", name: "a", info: 1}, {op: "set", name: "b", info: 2}, {op: "set", name: "d", info: 4},
				{op: "del", name: "a", ok: true}},
			slots: map[int]string{0: "c", 1: "d", 6: "b"},
		},
		{
			name:  "a later name skips one it cannot move past",
			homes: map[string]uint64{"a": 2, "b": 3, "c": 2, "d": 4},
			// a@2 b@3 c@4 d@5; deleting a moves c (home 2) to 2, d (home 4) to 4; b stays at 3.
			ops: []op{{op: "set", name: "a", info: 1}, {op: "set", name: "b", info: 2}, {op: "set", name: "c", info: 3}, {op: "set", name: "d", info: 4},
				{op: "del", name: "a", ok: true}},
			slots: map[int]string{2: "c", 3: "b", 4: "d"},
		},
		{
			name:  "delete the cluster's last name",
			homes: map[string]uint64{"a": 7, "b": 7},
			ops:   []op{{op: "set", name: "a", info: 1}, {op: "set", name: "b", info: 2}, {op: "del", name: "b", ok: true}, {op: "del", name: "b"}},
			slots: map[int]string{7: "a"},
		},
		{
			name:  "overwrite keeps the slot",
			homes: map[string]uint64{"a": 5, "b": 5},
			ops: []op{{op: "set", name: "a", info: 1}, {op: "set", name: "b", info: 2}, {op: "set", name: "a", info: 9},
				{op: "get", name: "a", info: 9, ok: true}},
			slots: map[int]string{5: "a", 6: "b"},
		},
		{
			name:  "miss in a full cluster stops at the empty slot",
			homes: map[string]uint64{"a": 0, "b": 0, "c": 0, "d": 0, "e": 0, "f": 0, "g": 0},
			ops: []op{{op: "set", name: "a", info: 1}, {op: "set", name: "b", info: 2}, {op: "set", name: "c", info: 3}, {op: "set", name: "d", info: 4},
				{op: "set", name: "e", info: 5}, {op: "set", name: "f", info: 6}, {op: "get", name: "g"}, {op: "del", name: "g"}},
			slots: map[int]string{0: "a", 1: "b", 2: "c", 3: "d", 4: "e", 5: "f"},
		},
		{
			name:  "names of 1, 253 and 300 bytes, and an empty one",
			homes: map[string]uint64{"x": 3, long: 3, huge: 4, "": 3},
			ops: []op{{op: "set", name: "x", info: 1}, {op: "set", name: long, info: 2}, {op: "set", name: huge, info: 3}, {op: "set", name: "", info: 4},
				{op: "get", name: long, info: 2, ok: true}, {op: "get", name: huge, info: 3, ok: true}, {op: "del", name: "x", ok: true}},
			slots: map[int]string{3: long, 4: huge, 5: ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := domainSet{hash: func(name string) uint64 {
				h, ok := tt.homes[name]
				if !ok {
					t.Fatalf("no home for %q", name)
				}
				return h | uint64(len(name))<<60 // the tag: "a" and "b" share one, long names differ
			}}
			want := map[string]domainInfo{}
			for _, o := range tt.ops {
				switch o.op {
				case "set":
					d.set(o.name, o.info)
					want[o.name] = o.info
				case "del":
					if ok := d.del(o.name); ok != o.ok {
						t.Errorf("del(%.10q) = %v, want %v", o.name, ok, o.ok)
					}
					delete(want, o.name)
				case "get":
					if i, ok := d.get(o.name); ok != o.ok || i != o.info {
						t.Errorf("get(%.10q) = %x, %v; want %x, %v", o.name, i, ok, o.info, o.ok)
					}
				}
				checkSet(t, fmt.Sprintf("after %s %.10q", o.op, o.name), &d, want)
			}
			if len(d.refs) != 8 {
				t.Fatalf("%d slots, want 8", len(d.refs))
			}
			for i, r := range d.refs {
				got, want := "<empty>", "<empty>"
				if d.infos[i] != 0 {
					got = d.name(r)
				}
				if w, ok := tt.slots[i]; ok {
					want = w
				}
				if got != want {
					t.Errorf("slot %d holds %.12q, want %.12q", i, got, want)
				}
			}
		})
	}
}

// TestDomainSetGrowth: a set filled one name at a time doubles at 3/4
// load and ends at the size reserve would have chosen; a reserved set
// does not grow while it fills; names are stored once, and a long one
// gets its own chunk without breaking later refs.
func TestDomainSetGrowth(t *testing.T) {
	for _, n := range []int{0, 1, 6, 7, 12, 13, 1000, 100_000} {
		var grown, reserved domainSet
		reserved.reserve(n)
		slots := len(reserved.refs)
		want := make(map[string]domainInfo, n)
		for i := range n {
			name := fmt.Sprintf("d%d.example", i)
			grown.set(name, domainInfo(i))
			reserved.set(name, domainInfo(i))
			want[name] = domainInfo(i)
		}
		checkSet(t, fmt.Sprintf("%d grown", n), &grown, want)
		checkSet(t, fmt.Sprintf("%d reserved", n), &reserved, want)
		if s := slotsFor(n); n > s*3/4 || s > minSlots && n <= s/2*3/4 {
			t.Errorf("slotsFor(%d) = %d", n, s)
		}
		if n > 0 && (len(grown.refs) != slotsFor(n) || len(reserved.refs) != slots) {
			t.Errorf("%d names: %d slots grown, %d reserved (%d when reserved), want %d", n, len(grown.refs), len(reserved.refs), slots, slotsFor(n))
		}
	}

	// Names fill chunks: a name that does not fit starts the next one,
	// one longer than a chunk gets a chunk of its own.
	var d domainSet
	want := map[string]domainInfo{}
	for i := range 20_000 {
		name := fmt.Sprintf("%s%d.example", strings.Repeat("n", i%200), i)
		if i%5000 == 1 {
			name = strings.Repeat("L", nameChunk+i)
		}
		d.set(name, domainInfo(i))
		want[name] = domainInfo(i)
	}
	checkSet(t, "20 000 names and long ones", &d, want)
	if len(d.chunks) < 20_000*100/nameChunk {
		t.Errorf("%d chunks", len(d.chunks))
	}
	for i, c := range d.chunks { // over nameChunk: one long name alone
		if len(c) > nameChunk && (c[0] != longName || len(c) != 5+len(d.name(uint32(i)<<refOffsetBits))) {
			t.Errorf("chunk %d: %d bytes, starting %.20q", i, len(c), c)
		}
	}
}

// TestDomainSetIteration: all yields each name once and stops when told
// to; deleteFunc asks about each name once and removes what it is told
// to, on tables full of wrapped clusters.
func TestDomainSetIteration(t *testing.T) {
	for _, homes := range []uint64{1, 3, 8, 1 << 20} {
		t.Run(fmt.Sprint(homes), func(t *testing.T) {
			d := domainSet{hash: func(name string) uint64 {
				h := uint64(0)
				for _, c := range []byte(name) {
					h = h*31 + uint64(c)
				}
				return (h%homes - 3) ^ h<<57 // the first homes are the table's last slots; the tags vary
			}}
			want := map[string]domainInfo{}
			for i := range 3000 {
				name := fmt.Sprintf("d%d.example", i)
				d.set(name, domainInfo(i%7))
				want[name] = domainInfo(i % 7)
			}
			checkSet(t, "filled", &d, want)
			n := 0
			for range d.all() {
				n++
				if n == 10 {
					break
				}
			}
			if n != 10 {
				t.Errorf("all yielded %d names before the break, want 10", n)
			}
			asked := map[string]int{}
			d.deleteFunc(func(name string, i domainInfo) bool {
				asked[name]++
				return i == 3 || i == 5
			})
			for name, i := range want {
				if asked[name] != 1 {
					t.Errorf("deleteFunc asked about %q %d times", name, asked[name])
				}
				if i == 3 || i == 5 {
					delete(want, name)
				}
			}
			checkSet(t, "after deleteFunc", &d, want)
			d.deleteFunc(func(string, domainInfo) bool { return true })
			checkSet(t, "emptied", &d, map[string]domainInfo{})
		})
	}
}

// TestDomainSetBytes: a name given as bytes (Restore's lines) hashes and
// compares as the same name given as a string, and is copied.
func TestDomainSetBytes(t *testing.T) {
	var d domainSet
	line := []byte("bytes.example")
	stored, added := put(&d, line, 7, false)
	copy(line, "XXXXX")
	if !added || stored != "bytes.example" {
		t.Fatalf("put = %q, %v", stored, added)
	}
	if i, ok := d.get("bytes.example"); !ok || i != 7 {
		t.Errorf("get = %x, %v", i, ok)
	}
	if _, added := put(&d, []byte("bytes.example"), 8, false); added {
		t.Error("the same name as bytes added twice")
	}
	if k, ok := key(&d, []byte("bytes.example")); !ok || k != "bytes.example" {
		t.Errorf("key = %q, %v", k, ok)
	}
	if i, _ := d.get("bytes.example"); i != 7 {
		t.Errorf("put without replace changed the info to %x", i)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("an info with a source index over the tag's bits was taken")
			}
		}()
		d.set("big-source.example", packDomainInfo(maxSourceForTags, 0, false))
	}()
	if i, ok := d.get("bytes.example"); !ok || i != 7 {
		t.Errorf("get after the refused set = %x, %v", i, ok)
	}
	d.set("max.example", packDomainInfo(maxSourceForTags-1, 1<<32-1, true))
	if i, ok := d.get("max.example"); !ok || i.source() != maxSourceForTags-1 || i.line() != 1<<32-1 || !i.alias() {
		t.Errorf("the largest source index, line and the alias flag come back as %x, %v", i, ok)
	}
	var empty domainSet
	if _, ok := empty.get("x"); ok || empty.del("x") || empty.len() != 0 {
		t.Error("the zero set is not empty")
	}
	for range empty.all() {
		t.Error("the zero set yields")
	}
}

// FuzzDomainSet runs random sequences of set (of a string or, for odd
// infos, of bytes), get (and key of bytes), del and deleteFunc on
// a domainSet and on a Go map and compares them. The first byte picks
// the hash: maphash, or a weak one of 1 to 16 homes that makes every
// name collide. Each operation is two bytes: what (and the info), and
// which name (from a pool of 1 to 300 bytes).
func FuzzDomainSet(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 2, 1, 1, 2, 1})
	f.Add([]byte{1, 0, 1, 4, 2, 8, 3, 1, 1, 2, 2, 3, 3})
	f.Add([]byte{3, 0, 0, 4, 16, 8, 32, 12, 0, 3, 1, 1, 16})
	pool := func(b byte) string {
		switch b {
		case 255:
			return strings.Repeat("l", 253)
		case 254:
			return strings.Repeat("h", 300)
		case 253:
			return "x"
		}
		return fmt.Sprintf("%s%d.example", strings.Repeat("n", int(b%5)), b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		var d domainSet
		if homes := uint64(data[0] % 17); homes > 0 {
			d.hash = func(name string) uint64 {
				return uint64(len(name)+int(name[len(name)/2]))%homes*7 | uint64(name[0])<<60
			}
		}
		want := map[string]domainInfo{}
		data = data[1:]
		for len(data) >= 2 {
			op, name := data[0], pool(data[1])
			data = data[2:]
			info := domainInfo(op >> 2)
			switch op & 3 {
			case 0:
				if info&1 == 0 {
					d.set(name, info)
				} else {
					put(&d, []byte(name), info, true) // as Restore gives names
				}
				want[name] = info
			case 1:
				gi, gok := d.get(name)
				wi, wok := want[name]
				if gi != wi || gok != wok {
					t.Fatalf("get(%q) = %x, %v; the map has %x, %v", name, gi, gok, wi, wok)
				}
				if k, ok := key(&d, []byte(name)); ok != wok || ok && k != name {
					t.Fatalf("key(%q) = %q, %v; the map has it: %v", name, k, ok, wok)
				}
			case 2:
				_, wok := want[name]
				if ok := d.del(name); ok != wok {
					t.Fatalf("del(%q) = %v; the map had it: %v", name, ok, wok)
				}
				delete(want, name)
			case 3:
				d.deleteFunc(func(_ string, i domainInfo) bool { return i == info })
				maps.DeleteFunc(want, func(_ string, i domainInfo) bool { return i == info })
			}
			if d.len() != len(want) {
				t.Fatalf("len %d, the map's %d", d.len(), len(want))
			}
		}
		checkSet(t, "at the end", &d, want)
	})
}

// lookupNames returns n domain names, as bench.sh's tables hold them.
func lookupNames(n int, prefix string) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s%d.example", prefix, i)
	}
	return names
}

// BenchmarkDomainLookup compares a lookup in the domainSet with one in
// the map[string]domainInfo Snapshot had before (its keys interned as
// builder.intern did), for names it holds and names it lacks, at 10 000
// and 1 000 000 domains. The queries are copies, in random order.
func BenchmarkDomainLookup(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		names := lookupNames(n, "d")
		m := make(map[string]domainInfo, n)
		bl := &builder{}
		var d domainSet
		for i, name := range names {
			m[intern(bl, name)] = domainInfo(i)
			d.set(name, domainInfo(i))
		}
		hits := make([]string, n)
		for i, j := range rand.Perm(n) {
			hits[i] = strings.Clone(names[j])
		}
		misses := lookupNames(n, "x")
		rand.Shuffle(n, func(i, j int) { misses[i], misses[j] = misses[j], misses[i] })
		for _, q := range []struct {
			what    string
			queries []string
		}{{"hit", hits}, {"miss", misses}} {
			b.Run(fmt.Sprintf("map/%s-%d", q.what, n), func(b *testing.B) {
				i, found := 0, 0
				for b.Loop() {
					if _, ok := m[q.queries[i]]; ok {
						found++
					}
					if i++; i == n {
						i = 0
					}
				}
				runtime.KeepAlive(found)
			})
			b.Run(fmt.Sprintf("set/%s-%d", q.what, n), func(b *testing.B) {
				i, found := 0, 0
				for b.Loop() {
					if _, ok := d.get(q.queries[i]); ok {
						found++
					}
					if i++; i == n {
						i = 0
					}
				}
				runtime.KeepAlive(found)
			})
		}
	}
}

// BenchmarkDomainMemory reports the live heap a million domains cost
// (HeapAlloc after a collection, less before), names included: in the
// map Snapshot had before (keys interned) and in the domainSet, each
// grown one name at a time and sized beforehand (a rebuild, Restore).
func BenchmarkDomainMemory(b *testing.B) {
	const n = 1_000_000
	names := lookupNames(n, "d")
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for _, c := range []struct {
		name  string
		build func(sized bool) any
	}{
		{"map", func(sized bool) any {
			m := map[string]domainInfo{}
			if sized {
				m = make(map[string]domainInfo, n)
			}
			bl := &builder{}
			for i, name := range names {
				m[intern(bl, name)] = domainInfo(i)
			}
			return m
		}},
		{"set", func(sized bool) any {
			d := new(domainSet)
			if sized {
				d.reserve(n)
			}
			for i, name := range names {
				d.set(name, domainInfo(i))
			}
			return d
		}},
	} {
		for _, sized := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/sized=%v", c.name, sized), func(b *testing.B) {
				var per float64
				for b.Loop() {
					before := heap()
					kept := c.build(sized)
					per = float64(heap()-before) / n
					runtime.KeepAlive(kept)
				}
				b.ReportMetric(per, "B/domain")
			})
		}
	}
}
