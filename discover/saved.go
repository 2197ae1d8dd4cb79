package discover

// The last good Snapshot, kept on disk so that a daemon restarted with a
// broken configuration (a syntax error in dovecot.conf, an unreadable
// main.cf) still answers what it answered before.
//
// The file is text, written in one pass over the Snapshot (a million
// domains are some 30 MB on disk and no copy of the domain map in
// memory), and read back the same way:
//
//	mailautoconf snapshot 1
//	{"saved":"2025-01-02T03:04:05Z","version":"1.2.0","fingerprint":"…","domains":2,"hostname":…}
//	example.com 0 12 -
//	alias.example 1 0 a example.com
//	end 2 1f2e3d4c
//
// A domain line is the name, the index of its source in the header's
// sources, the line there (0 for a database table), "a" for a virtual
// alias domain or "-", and the domain its addresses reach when known. The
// last line repeats the count and holds the CRC-32C of everything before
// it, so that a truncated or damaged file is refused rather than served.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// SavedFile is the name of the saved Snapshot in a state directory.
const SavedFile = "snapshot"

// savedMagic is the first line of a saved Snapshot; the number is the
// format's version.
const savedMagic = "mailautoconf snapshot 1"

// ErrNoSaved says there is no saved Snapshot (the file does not exist).
var ErrNoSaved = errors.New("no saved snapshot")

// SavedInfo describes a saved Snapshot.
type SavedInfo struct {
	Path    string
	Saved   time.Time // when it was written
	Version string    // the mailautoconf release that wrote it
	Domains int
	// Fingerprint identifies the content: two Snapshots with the same
	// fingerprint tell clients the same (see Snapshot.Fingerprint).
	Fingerprint uint64
}

// savedHeader is the second line of a saved Snapshot: everything but the
// domains.
type savedHeader struct {
	Saved       time.Time `json:"saved"`
	Version     string    `json:"version"`
	Fingerprint string    `json:"fingerprint"` // hex
	Domains     int       `json:"domains"`
	savedContent
}

// savedContent is the part of the header the fingerprint covers.
type savedContent struct {
	Hostname       string        `json:"hostname"`
	Listed         bool          `json:"domains_listed"`
	Sources        []string      `json:"sources"`
	Endpoints      []Endpoint    `json:"endpoints"`
	Certificates   []Certificate `json:"certificates"`
	Warnings       []string      `json:"warnings"`
	DomainWarnings []string      `json:"domain_warnings"`
	Files          []string      `json:"files"`
	Globs          []string      `json:"globs"`
	Unreachable    []string      `json:"unreachable"`
	HeldBack       []Endpoint    `json:"held_back"`
	ProcNet        string        `json:"proc_net"`
	// Groupware is nil on a host without groupware, so its saved
	// snapshots and fingerprints are those of earlier releases.
	Groupware *Groupware `json:"groupware,omitempty"`
}

func contentOf(s *Snapshot) savedContent {
	return savedContent{
		Hostname: s.hostname, Listed: s.listed, Sources: s.sources,
		Endpoints: s.endpoints, Certificates: s.certs, Warnings: s.warnings, DomainWarnings: s.domainWarnings,
		Files: s.files, Globs: s.globs, Unreachable: s.unreachable, HeldBack: s.held, ProcNet: s.procNet,
		Groupware: s.groupware.orNil(),
	}
}

// The fingerprint (Snapshot.Fingerprint) is a 64-bit hash of everything
// a Snapshot would save: the host name, the domains (with their sources,
// alias flags and targets), the endpoints, certificates, warnings and
// watched files. It is the sum of one hash per domain and per alias
// target (domainHash, aliasHash) and one of the rest (contentHash), so it
// does not depend on the maps' order and is kept up to date as a build
// adds, replaces and removes domains (builder.putDomain and the like)
// instead of walking a million domains again to tell that a refresh
// changed nothing. It is stable across runs and releases of the same
// format: the saved file's fingerprint is compared with a new
// Snapshot's after a restart.

// contentHash is the fingerprint's share of everything but the domains.
func contentHash(s *Snapshot) uint64 {
	head, _ := json.Marshal(contentOf(s)) // plain data: cannot fail
	return mix(hashString(hashSeed, string(head)))
}

// domainHash is the fingerprint's share of domain name listed as i, its
// source hashed by sourceHash: by name, not by index, since two builds
// may number the sources differently.
func domainHash(name string, source uint64, i domainInfo) uint64 {
	h := hashString(hashSeed, name)
	h = (h ^ source) * hashPrime
	h = (h ^ uint64(i)&^((1<<31-1)<<32)) * hashPrime // the line and the alias flag
	return mix(h)
}

// aliasHash is the fingerprint's share of alias domain name's target;
// alias entries hash apart from domains.
func aliasHash(name, target string) uint64 {
	return mix(hashString(hashString(hashAliasSeed, name), target))
}

// sourceHash is a domain source's part of domainHash.
func sourceHash(source string) uint64 { return hashString(hashSeed, source) }

// hashSources extends b.srcHash to every source in b.snap.sources.
func (b *builder) hashSources() {
	for _, src := range b.snap.sources[len(b.srcHash):] {
		b.srcHash = append(b.srcHash, sourceHash(src))
	}
}

// putDomain lists domain name (not listed yet) as i in the Snapshot
// being built, keeping its fingerprint's sum. The Snapshot keeps a copy
// of name.
func (b *builder) putDomain(name string, i domainInfo) {
	b.snap.domains.set(name, i)
	b.domainSum += domainHash(name, b.srcHash[i.source()], i)
}

// replaceDomain lists domain name, listed as old, as i instead.
func (b *builder) replaceDomain(name string, old, i domainInfo) {
	b.snap.domains.set(name, i)
	b.domainSum += domainHash(name, b.srcHash[i.source()], i) - domainHash(name, b.srcHash[old.source()], old)
}

// deleteListed removes every domain listed as exactly i: what one table
// added (addDatabaseTable's undo).
func (b *builder) deleteListed(i domainInfo) {
	b.snap.domains.deleteFunc(func(name string, info domainInfo) bool {
		if info != i {
			return false
		}
		b.domainSum -= domainHash(name, b.srcHash[i.source()], i)
		return true
	})
}

// aliasName returns name as aliasOf keeps it: the domains' own copy when
// it is a hosted domain (it then costs nothing), else a copy in the
// arena, so that it never holds on to a line buffer or to a previous
// Snapshot's names.
func aliasName[S string | []byte](b *builder, name S) string {
	if k, ok := key(&b.snap.domains, name); ok {
		return k
	}
	return intern(b, name)
}

// setAlias records that alias domain name's addresses reach target.
func (b *builder) setAlias(name, target string) {
	b.putAlias(aliasName(b, name), aliasName(b, target))
}

// putAlias is setAlias for a name and target that aliasName returned.
func (b *builder) putAlias(name, target string) {
	if old, ok := b.snap.aliasOf[name]; ok {
		b.domainSum -= aliasHash(name, old)
	}
	b.snap.aliasOf[name] = target
	b.domainSum += aliasHash(name, target)
}

// sealFingerprint sets the Snapshot's fingerprint once its content is
// complete.
func (b *builder) sealFingerprint() {
	b.snap.fingerprint = contentHash(b.snap) + b.domainSum
}

const (
	hashSeed      = 0x9e3779b97f4a7c15
	hashAliasSeed = 0xc2b2ae3d27d4eb4f
	hashPrime     = 0x9fb21c651e98df25 // odd, well mixed (rrmxmx)
)

// hashString folds s into h eight bytes at a time (a name is one to four
// steps), then its tail and length. Not for adversaries: it tells
// whether a Snapshot changed, which only its own builds decide.
func hashString(h uint64, s string) uint64 {
	for len(s) >= 8 {
		v := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		h = bits.RotateLeft64((h^v)*hashPrime, 29)
		s = s[8:]
	}
	var tail uint64
	for i := 0; i < len(s); i++ {
		tail |= uint64(s[i]) << (8 * i)
	}
	return mix((h ^ tail ^ uint64(len(s))<<61) * hashPrime)
}

// mix is splitmix64's finalizer: it spreads the bits before the sum.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Save writes s to the file at file atomically: to file+".tmp" (mode
// 0600), synced, then renamed over file, and the directory synced, so a
// crash leaves the old file or the new one, never a mix. version names
// the release writing it. It returns what it wrote.
func Save(file string, s *Snapshot, version string, now time.Time) (SavedInfo, error) {
	fp := s.fingerprint
	hdr := savedHeader{
		Saved: now.UTC().Truncate(time.Second), Version: version,
		Fingerprint: strconv.FormatUint(fp, 16), Domains: s.domains.len(), savedContent: contentOf(s),
	}
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return SavedInfo{}, fmt.Errorf("save snapshot: %w", err)
	}
	fail := func(err error) (SavedInfo, error) {
		f.Close()
		os.Remove(tmp)
		return SavedInfo{}, fmt.Errorf("save snapshot %s: %w", file, err)
	}
	if err := f.Chmod(0o600); err != nil { // a left-over temporary file keeps its mode
		return fail(err)
	}
	crc := crc32.New(castagnoli)
	w := bufio.NewWriterSize(io.MultiWriter(f, crc), 64<<10)
	w.WriteString(savedMagic + "\n")
	head, err := json.Marshal(hdr)
	if err != nil {
		return fail(err)
	}
	if len(head) >= maxSavedHeader {
		return fail(fmt.Errorf("header of %d bytes, over the %d a reader takes", len(head), maxSavedHeader))
	}
	w.Write(head)
	w.WriteByte('\n')
	line := make([]byte, 0, 128)
	for name, i := range s.domains.all() {
		line = append(line[:0], name...)
		line = append(line, ' ')
		line = strconv.AppendInt(line, int64(i.source()), 10)
		line = append(line, ' ')
		line = strconv.AppendInt(line, int64(i.line()), 10)
		if i.alias() {
			line = append(line, " a"...)
		} else {
			line = append(line, " -"...)
		}
		if t := s.aliasOf[name]; t != "" {
			line = append(line, ' ')
			line = append(line, t...)
		}
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return fail(err)
		}
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if _, err := fmt.Fprintf(f, "end %d %08x\n", s.domains.len(), crc.Sum32()); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return SavedInfo{}, fmt.Errorf("save snapshot %s: %w", file, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return SavedInfo{}, fmt.Errorf("save snapshot: %w", err)
	}
	if d, err := os.Open(filepath.Dir(file)); err == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	return SavedInfo{Path: file, Saved: hdr.Saved, Version: version, Domains: s.domains.len(), Fingerprint: fp}, nil
}

// ReadSavedInfo reads only the header of the saved Snapshot at file:
// when and by which release it was written, how many domains it has. It
// returns an error wrapping ErrNoSaved when there is no file. It does not
// check the domains or the checksum: VerifySaved does.
func ReadSavedInfo(file string) (SavedInfo, error) {
	f, err := openSaved(file)
	if err != nil {
		return SavedInfo{}, err
	}
	defer f.Close()
	hdr, _, err := readSavedHeader(file, bufio.NewReader(f))
	if err != nil {
		return SavedInfo{}, err
	}
	return hdr.info(file)
}

// VerifySaved reads the whole saved Snapshot at file and checks it as
// Restore does (the checksum, the count, nothing after the end line),
// without keeping its domains: a file whose header is intact but whose
// body is damaged is not taken for the Snapshot it names. It returns an
// error wrapping ErrNoSaved when there is no file.
func VerifySaved(file string) (SavedInfo, error) {
	f, err := openSaved(file)
	if err != nil {
		return SavedInfo{}, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	hdr, crc, err := readSavedHeader(file, r)
	if err != nil {
		return SavedInfo{}, err
	}
	info, err := hdr.info(file)
	if err != nil {
		return SavedInfo{}, err
	}
	if err := readSavedBody(file, r, crc, hdr.Domains, nil); err != nil {
		return SavedInfo{}, err
	}
	return info, nil
}

// readSavedBody reads the domain lines that follow the header (whose
// checksum is crc) up to the end line, and checks them against it and
// the header's count (domains). fn, when not nil, takes each domain line
// with its newline; its error is returned naming file:line.
func readSavedBody(file string, r *bufio.Reader, crc uint32, domains int, fn func(line []byte) error) error {
	count := 0
	for n := 3; ; n++ {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("%s:%d: line too long", file, n)
		}
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("%s:%d: truncated: no end line", file, n)
			}
			return fmt.Errorf("read saved snapshot %s: %w", file, err)
		}
		if bytes.HasPrefix(line, []byte("end ")) {
			return checkEnd(file, n, line, crc, count, domains, r)
		}
		crc = crc32.Update(crc, castagnoli, line)
		if fn != nil {
			if err := fn(line); err != nil {
				return fmt.Errorf("%s:%d: %w", file, n, err)
			}
		}
		count++
	}
}

// checkEnd checks the end line (line n) against the checksum crc of
// what came before it and the count of domain lines read, and that
// nothing follows it in r.
func checkEnd(file string, n int, line []byte, crc uint32, read, header int, r *bufio.Reader) error {
	f := strings.Fields(strings.TrimPrefix(string(line), "end "))
	var (
		count int
		sum   uint64
		err   error
	)
	if len(f) == 2 {
		count, err = strconv.Atoi(f[0])
		if err == nil {
			sum, err = strconv.ParseUint(f[1], 16, 32)
		}
	}
	if len(f) != 2 || err != nil {
		return fmt.Errorf("%s:%d: bad end line %q", file, n, strings.TrimSpace(string(line)))
	}
	if uint32(sum) != crc {
		return fmt.Errorf("%s: damaged: checksum %08x, the end line says %08x", file, crc, sum)
	}
	if count != read || count != header {
		return fmt.Errorf("%s:%d: %d domains read, the file says %d", file, n, read, count)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return fmt.Errorf("%s:%d: data after the end line", file, n+1)
	}
	return nil
}

// openSaved opens the saved Snapshot for reading. The file is the service
// user's and root reads it too (show, check): a link in its place is
// refused, and so is anything but a regular file (opened non-blocking, so
// a FIFO does not hang the open).
func openSaved(file string) (*os.File, error) {
	f, err := hostfs.OpenRegular(file, syscall.O_NOFOLLOW)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("read saved snapshot %s: a symbolic link, not a saved snapshot", file)
	case errors.Is(err, hostfs.ErrNotRegular):
		return nil, fmt.Errorf("read saved snapshot %s: %w", file, err)
	}
	return nil, savedOpenError(err)
}

// maxSavedHeader bounds the header line: the endpoints, certificates,
// warnings and files of a host are far less; a file that is not what it
// should be must not make the reader allocate without end.
const maxSavedHeader = 16 << 20

// readLine reads a line of at most max bytes (with its newline).
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > max {
			return nil, errLineTooLong
		}
		line = append(line, frag...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}

var errLineTooLong = errors.New("line too long")

func savedOpenError(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrNoSaved, err)
	}
	return fmt.Errorf("read saved snapshot: %w", err)
}

func (h *savedHeader) info(file string) (SavedInfo, error) {
	fp, err := strconv.ParseUint(h.Fingerprint, 16, 64)
	if err != nil {
		return SavedInfo{}, fmt.Errorf("%s:2: bad fingerprint %q", file, h.Fingerprint)
	}
	return SavedInfo{Path: file, Saved: h.Saved, Version: h.Version, Domains: h.Domains, Fingerprint: fp}, nil
}

// readSavedHeader reads the first two lines, feeding them to crc too.
func readSavedHeader(file string, r *bufio.Reader) (*savedHeader, uint32, error) {
	crc := uint32(0)
	magic, err := readLine(r, len(savedMagic)+1)
	if err != nil || string(magic) != savedMagic+"\n" {
		if err != nil && err != io.EOF && err != errLineTooLong {
			return nil, 0, fmt.Errorf("read saved snapshot %s: %w", file, err)
		}
		return nil, 0, fmt.Errorf("%s:1: not a saved snapshot (want %q)", file, savedMagic)
	}
	crc = crc32.Update(crc, castagnoli, magic)
	head, err := readLine(r, maxSavedHeader)
	if err != nil {
		switch err {
		case io.EOF:
			return nil, 0, fmt.Errorf("%s:2: truncated header", file)
		case errLineTooLong:
			return nil, 0, fmt.Errorf("%s:2: header over %d bytes", file, maxSavedHeader)
		}
		return nil, 0, fmt.Errorf("read saved snapshot %s: %w", file, err)
	}
	crc = crc32.Update(crc, castagnoli, head)
	var hdr savedHeader
	if err := json.Unmarshal(head, &hdr); err != nil {
		return nil, 0, fmt.Errorf("%s:2: bad header: %w", file, err)
	}
	if hdr.Domains < 0 {
		return nil, 0, fmt.Errorf("%s:2: bad domain count %d", file, hdr.Domains)
	}
	return &hdr, crc, nil
}

// Restore reads the saved Snapshot at file. The Snapshot has the saved
// domains (with their alias targets and sources), endpoints,
// certificates, host name, warnings and files, but no database lookups:
// it answers only for the domains it lists. It returns an error wrapping
// ErrNoSaved when there is no file, and an error naming file:line when
// the file is damaged.
func Restore(file string) (*Snapshot, SavedInfo, error) {
	f, err := openSaved(file)
	if err != nil {
		return nil, SavedInfo{}, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	hdr, crc, err := readSavedHeader(file, r)
	if err != nil {
		return nil, SavedInfo{}, err
	}
	info, err := hdr.info(file)
	if err != nil {
		return nil, SavedInfo{}, err
	}
	// The count sizes the table, but a damaged header must not make us
	// allocate more than the file could hold (a line is at least 8 bytes).
	hint := hdr.Domains
	if st, err := f.Stat(); err == nil {
		hint = min(hint, int(st.Size()/8))
	}
	s := &Snapshot{
		hostname: hdr.Hostname, listed: hdr.Listed, sources: hdr.Sources,
		endpoints: hdr.Endpoints, certs: hdr.Certificates, warnings: hdr.Warnings, domainWarnings: hdr.DomainWarnings,
		files: hdr.Files, globs: hdr.Globs, unreachable: hdr.Unreachable, held: hdr.HeldBack, procNet: hdr.ProcNet,
		groupware: hdr.Groupware.orZero(), aliasOf: map[string]string{},
	}
	s.domains.reserve(hint)
	b := &builder{snap: s} // the fingerprint is summed
	b.hashSources()
	err = readSavedBody(file, r, crc, hdr.Domains, func(line []byte) error { return s.restoreDomain(b, line) })
	if err != nil {
		return nil, SavedInfo{}, err
	}
	// The fingerprint is summed as Build sums it: it equals the header's
	// unless a release that hashed otherwise wrote the file, and then the
	// next save rewrites it.
	b.sealFingerprint()
	return s, info, nil
}

// restoreDomain adds the domain of one saved line (with its newline).
// The checksum vouches for the content, so a name is taken as written. It
// allocates nothing but the name's share of a chunk of Snapshot.domains.
func (s *Snapshot) restoreDomain(b *builder, line []byte) error {
	var f [6][]byte
	n := 0
	for field := range bytes.SplitSeq(line[:len(line)-1], []byte{' '}) {
		if n == len(f) {
			break
		}
		f[n] = field
		n++
	}
	if n != 4 && n != 5 {
		return fmt.Errorf("want 4 or 5 fields, got %d", n)
	}
	if len(f[0]) == 0 {
		return errors.New("empty domain")
	}
	src, ok := parseUint(f[1])
	if !ok || src >= uint64(len(s.sources)) {
		return fmt.Errorf("bad source index %q", f[1])
	}
	ln, ok := parseUint(f[2])
	if !ok || ln > 1<<32-1 {
		return fmt.Errorf("bad line number %q", f[2])
	}
	alias := string(f[3]) == "a"
	if !alias && string(f[3]) != "-" {
		return fmt.Errorf("bad alias flag %q", f[3])
	}
	info := packDomainInfo(int(src), int(ln), alias)
	name, added := put(&s.domains, f[0], info, false)
	if !added {
		return fmt.Errorf("domain %s twice", f[0])
	}
	b.domainSum += domainHash(name, b.srcHash[info.source()], info) // as putDomain
	if n == 5 {
		if len(f[4]) == 0 {
			return errors.New("empty alias target")
		}
		b.putAlias(name, aliasName(b, f[4])) // name is the domains' copy
	}
	return nil
}

// parseUint parses a decimal number of at most 10 digits.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// MainFiles returns the host paths of the main configuration files Build
// starts from (main.cf, master.cf, dovecot.conf): what to watch when no
// Snapshot has been built, so that fixing one of them is noticed.
func MainFiles(opt Options) []string {
	pfDir := opt.PostfixDir
	if pfDir == "" {
		pfDir = defaultPostfixDir(opt.Root)
	}
	dc := opt.DovecotConfig
	if dc == "" {
		dc = "/etc/dovecot/dovecot.conf"
	}
	return []string{path.Join(pfDir, "main.cf"), path.Join(pfDir, "master.cf"), dc}
}
