package discover

import (
	"fmt"
	"hash/maphash"
	"iter"
	"strings"
	"unsafe"
)

// A domainSet maps the hosted domains' names to where they were listed
// (domainInfo): the Snapshot's domain table. With a million domains it
// is most of a Snapshot's memory, so it is laid out to cost little more
// than the names themselves:
//
//   - each name is stored once, after its length, in append-only chunks
//     of nameChunk bytes (strings written with a strings.Builder, which
//     never moves the bytes it has written while it has room, so a name
//     is returned as a view into its chunk, never copied);
//   - a slot is a uint32 ref (the chunk's index, then the name's offset
//     in it: see store) and a domainInfo, in two parallel arrays: 12
//     bytes a slot against a Go map's 24 a slot plus its control bytes,
//     and the names are a few hundred allocations, not a million;
//   - the domainInfo a slot stores also marks the slot used and holds 7
//     bits of the name's hash in bits that a domainInfo leaves zero (see
//     slotUsed), so that a lookup reads a name only when those match: a
//     probe past other names, or one that ends at an empty slot, touches
//     the infos array alone;
//   - open addressing with linear probing, at most 3/4 full (the table
//     doubles then, hashing every name again: only 7 bits of the hash
//     are stored), and backward-shift deletion, so there are no
//     tombstones and a lookup stops at the first empty slot.
//
// Names are hashed with hash/maphash under a seed of the set's own, so
// no one can choose names that collide without knowing it.
//
// The zero domainSet is empty and ready to use. A domainSet must not be
// modified while all iterates over it, nor be used from several
// goroutines unless none modifies it (a built Snapshot never does).
type domainSet struct {
	refs []uint32 // len a power of two, or 0
	// infos[i] goes with refs[i], with slotUsed and the hash tag set in
	// it; 0 is an empty slot.
	infos []domainInfo
	n     int // used slots

	seed maphash.Seed
	// hash, when not nil, replaces maphash (tests force collisions).
	hash func(name string) uint64

	chunks []string         // the names, length-prefixed; the last one grows within cur
	cur    *strings.Builder // the last chunk's builder, nil before the first name
}

const (
	// nameChunk is the size of the strings names are copied into: offsets
	// in a chunk fit refOffsetBits. A longer name gets a chunk of its own.
	nameChunk     = 64 << 10
	refOffsetBits = 16
	// maxChunks is how many chunks a ref can name: 4 GiB of names, some
	// 200 million domains.
	maxChunks = 1 << (32 - refOffsetBits)
	// longName is the length byte that says a 4-byte length follows (a
	// name of 255 bytes or more: never a domain name, at most 253).
	longName = 0xff
	// minSlots is the smallest table that is allocated.
	minSlots = 8

	// A used slot's stored info is the domainInfo with slotUsed set and
	// the top 7 bits of the name's hash in the 7 bits below it (tagShift
	// up): domainInfo leaves bits 55 to 62 zero (a source index is far
	// below 1<<23).
	tagShift         = 55
	slotUsed         = domainInfo(1) << 62
	slotMeta         = domainInfo(0xff) << tagShift // slotUsed and the tag
	tagBits          = 7
	hashTagShift     = 64 - tagBits
	maxSourceForTags = 1 << (tagShift - 32)
)

// slotTag returns the stored info's meta bits for a name of hash h.
func slotTag(h uint64) domainInfo { return slotUsed | domainInfo(h>>hashTagShift)<<tagShift }

// slotsFor returns the table size that holds n names under 3/4 load.
func slotsFor(n int) int {
	s := minSlots
	for s-s/4 < n {
		s *= 2
	}
	return s
}

// reserve makes room for n names in all without growing again on the
// way: Build sizes the table from the previous Snapshot's count.
func (d *domainSet) reserve(n int) {
	if s := slotsFor(n); s > len(d.refs) {
		d.resize(s)
	}
}

// len returns how many names the set holds.
func (d *domainSet) len() int { return d.n }

// hashOf returns name's hash.
func (d *domainSet) hashOf(name string) uint64 {
	if d.hash != nil {
		return d.hash(name)
	}
	return maphash.String(d.seed, name)
}

// name returns the name ref points to, a view into its chunk.
func (d *domainSet) name(ref uint32) string {
	c := d.chunks[ref>>refOffsetBits]
	off := int(ref & (1<<refOffsetBits - 1))
	n := int(c[off])
	off++
	if n == longName {
		n = int(c[off]) | int(c[off+1])<<8 | int(c[off+2])<<16 | int(c[off+3])<<24
		off += 4
	}
	return c[off : off+n]
}

// find returns the slot that holds name, whose hash is h, or the empty
// slot where it would go and false. The table must not be empty.
func (d *domainSet) find(name string, h uint64) (int, bool) {
	mask := len(d.refs) - 1
	i := int(h) & mask
	tag := slotTag(h)
	for {
		info := d.infos[i]
		if info == 0 {
			return i, false
		}
		if info&slotMeta == tag && d.name(d.refs[i]) == name {
			return i, true
		}
		i = (i + 1) & mask
	}
}

// findBytes is find for a name given as bytes (Restore's lines). The
// bytes are viewed as a string, not copied: find keeps nothing of name.
func (d *domainSet) findBytes(name []byte, h uint64) (int, bool) {
	return d.find(unsafe.String(unsafe.SliceData(name), len(name)), h)
}

// slotOf returns find's answer for name, given as a string or as bytes,
// and name's hash.
func slotOf[S string | []byte](d *domainSet, name S) (i int, ok bool, h uint64) {
	switch n := any(name).(type) {
	case string:
		h = d.hashOf(n)
		i, ok = d.find(n, h)
	case []byte:
		if d.hash != nil {
			h = d.hash(string(n))
		} else {
			h = maphash.Bytes(d.seed, n) // equals maphash.String of the same bytes
		}
		i, ok = d.findBytes(n, h)
	}
	return i, ok, h
}

// get returns how name was listed, and whether it is in the set.
func (d *domainSet) get(name string) (domainInfo, bool) {
	if d.n == 0 {
		return 0, false
	}
	i, ok := d.find(name, d.hashOf(name))
	if !ok {
		return 0, false
	}
	return d.infos[i] &^ slotMeta, true
}

// key returns the set's own copy of name, when it holds name: a string
// that costs no memory of its own (the alias targets use it).
func key[S string | []byte](d *domainSet, name S) (string, bool) {
	if d.n == 0 {
		return "", false
	}
	i, ok, _ := slotOf(d, name)
	if !ok {
		return "", false
	}
	return d.name(d.refs[i]), true
}

// set lists name as info, copying the name when it is new.
func (d *domainSet) set(name string, info domainInfo) { put(d, name, info, true) }

// put lists name as info and returns the set's copy of it. A name already
// in the set keeps its copy, and its info is replaced only when replace
// is true; added tells whether the name is new.
func put[S string | []byte](d *domainSet, name S, info domainInfo, replace bool) (stored string, added bool) {
	if info&slotMeta != 0 {
		panic(fmt.Sprintf("discover: domain info %x: a source index of %d or more", uint64(info), maxSourceForTags))
	}
	if len(d.refs) == 0 {
		d.resize(minSlots)
	}
	i, ok, h := slotOf(d, name)
	if ok {
		if replace {
			d.infos[i] = d.infos[i]&slotMeta | info
		}
		return d.name(d.refs[i]), false
	}
	if d.n+1 > len(d.refs)-len(d.refs)/4 {
		d.resize(2 * len(d.refs))
		i, _, _ = slotOf(d, name)
	}
	r := store(d, name)
	d.refs[i], d.infos[i] = r, slotTag(h)|info
	d.n++
	return d.name(r), true
}

// store copies name, after its length, into the chunks and returns its
// ref: the chunk's index in the high bits, the offset in it in the low
// refOffsetBits.
func store[S string | []byte](d *domainSet, name S) uint32 {
	need := 1 + len(name)
	if len(name) >= longName {
		need += 4
	}
	if d.cur == nil || d.cur.Cap()-d.cur.Len() < need || d.cur.Len() >= 1<<refOffsetBits {
		if len(d.chunks) == maxChunks {
			panic(fmt.Sprintf("discover: over %d bytes of domain names", maxChunks*nameChunk))
		}
		d.cur = new(strings.Builder)
		d.cur.Grow(max(nameChunk, need))
		d.chunks = append(d.chunks, "")
	}
	off := d.cur.Len()
	if len(name) >= longName {
		n := len(name)
		d.cur.Write([]byte{longName, byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)})
	} else {
		d.cur.WriteByte(byte(len(name)))
	}
	switch n := any(name).(type) {
	case string:
		d.cur.WriteString(n)
	case []byte:
		d.cur.Write(n)
	}
	d.chunks[len(d.chunks)-1] = d.cur.String() // the same bytes, longer: earlier views stay valid
	return uint32(len(d.chunks)-1)<<refOffsetBits | uint32(off)
}

// resize moves the names into a table of s slots (a power of two, room
// for them all), hashing each again.
func (d *domainSet) resize(s int) {
	if d.seed == (maphash.Seed{}) {
		d.seed = maphash.MakeSeed()
	}
	refs, infos := d.refs, d.infos
	d.refs, d.infos = make([]uint32, s), make([]domainInfo, s)
	mask := s - 1
	for j, info := range infos {
		if info == 0 {
			continue
		}
		i := int(d.hashOf(d.name(refs[j]))) & mask
		for d.infos[i] != 0 {
			i = (i + 1) & mask
		}
		d.refs[i], d.infos[i] = refs[j], info
	}
}

// del removes name from the set, and tells whether it was there. Its
// bytes stay in their chunk.
func (d *domainSet) del(name string) bool {
	if d.n == 0 {
		return false
	}
	i, ok := d.find(name, d.hashOf(name))
	if ok {
		d.remove(i)
	}
	return ok
}

// remove empties slot i: each name after it in the cluster whose probe
// passes i moves back into the hole, which moves on to where it was
// (backward-shift deletion), so that every name stays reachable from its
// home slot without a tombstone.
func (d *domainSet) remove(i int) {
	mask := len(d.refs) - 1
	for j := (i + 1) & mask; d.infos[j] != 0; j = (j + 1) & mask {
		home := int(d.hashOf(d.name(d.refs[j]))) & mask
		if (j-home)&mask >= (j-i)&mask { // i lies on the way from home to j
			d.refs[i], d.infos[i] = d.refs[j], d.infos[j]
			i = j
		}
	}
	d.refs[i], d.infos[i] = 0, 0
	d.n--
}

// deleteFunc removes every name for which del returns true, calling del
// once for each name in the set. del must not modify the set.
func (d *domainSet) deleteFunc(del func(name string, info domainInfo) bool) {
	if d.n == 0 {
		return
	}
	// The sweep starts after an empty slot (there is one: the table is at
	// most 3/4 full), which stays empty: a removal moves names back only
	// from later in their cluster to the slot being looked at or later,
	// never past it, so each name is looked at once.
	mask := len(d.refs) - 1
	start := 0
	for d.infos[start] != 0 {
		start++
	}
	for k := 1; k <= mask; k++ {
		i := (start + k) & mask
		for d.infos[i] != 0 && del(d.name(d.refs[i]), d.infos[i]&^slotMeta) {
			d.remove(i)
		}
	}
}

// all yields every name in the set with its info, in no particular order.
func (d *domainSet) all() iter.Seq2[string, domainInfo] {
	return func(yield func(string, domainInfo) bool) {
		for i, info := range d.infos {
			if info != 0 && !yield(d.name(d.refs[i]), info&^slotMeta) {
				return
			}
		}
	}
}
