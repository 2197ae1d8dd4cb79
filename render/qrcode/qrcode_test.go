package qrcode

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// Values from ISO/IEC 18004:2015: format information (annex C, table
// C.1), version information (annex D, table D.1), alignment pattern rows
// (annex E, table E.1), byte mode capacities (table 7).
func TestStandardTables(t *testing.T) {
	for _, c := range []struct {
		l    Level
		mask int
		want uint32
	}{
		{L, 0, 0b111011111000100},
		{M, 0, 0b101010000010010},
		{Q, 0, 0b011010101011111},
		{H, 0, 0b001011010001001},
	} {
		if got := formatInformation(c.l, c.mask); got != c.want {
			t.Errorf("format information %v mask %d = %015b, want %015b", c.l, c.mask, got, c.want)
		}
	}
	for v, want := range map[int]uint32{7: 0x07c94, 8: 0x085bc, 9: 0x09a99, 10: 0x0a4d3, 40: 0x28c69} {
		if got := versionInformation(v); got != want {
			t.Errorf("version information %d = %#05x, want %#05x", v, got, want)
		}
	}
	for v, want := range map[int][]int{
		1: nil, 2: {6, 18}, 7: {6, 22, 38}, 14: {6, 26, 46, 66}, 15: {6, 26, 48, 70}, 16: {6, 26, 50, 74},
		21: {6, 28, 50, 72, 94}, 32: {6, 34, 60, 86, 112, 138}, 36: {6, 24, 50, 76, 102, 128, 154},
		39: {6, 26, 54, 82, 110, 138, 166}, 40: {6, 30, 58, 86, 114, 142, 170},
	} {
		if got := alignmentPositions(v); !slices.Equal(got, want) {
			t.Errorf("alignment positions %d = %v, want %v", v, got, want)
		}
	}
	for v, want := range map[int]int{1: 26, 2: 44, 7: 196, 14: 581, 40: 3706} {
		if got := totalCodewords(v); got != want {
			t.Errorf("codewords of version %d = %d, want %d", v, got, want)
		}
	}
	for _, c := range []struct {
		v    int
		want [4]int // L M Q H
	}{
		{1, [4]int{17, 14, 11, 7}},
		{5, [4]int{106, 84, 60, 44}},
		{10, [4]int{271, 213, 151, 119}},
		{40, [4]int{2953, 2331, 1663, 1273}},
	} {
		for l, want := range c.want {
			if got := capacity(c.v, Level(l)); got != want {
				t.Errorf("byte capacity %d-%v = %d, want %d", c.v, Level(l), got, want)
			}
		}
	}
}

// TestCodeDistance: the format and version information codes keep their
// minimum distances (7 and 8), so a table error would show.
func TestCodeDistance(t *testing.T) {
	var format []uint32
	for l := L; l <= H; l++ {
		for m := range 8 {
			format = append(format, formatInformation(l, m))
		}
	}
	var version []uint32
	for v := 7; v <= 40; v++ {
		version = append(version, versionInformation(v))
	}
	for _, c := range []struct {
		name  string
		codes []uint32
		min   int
	}{{"format", format, 7}, {"version", version, 8}} {
		for i := range c.codes {
			for j := range i {
				if d := bits.OnesCount32(c.codes[i] ^ c.codes[j]); d < c.min {
					t.Errorf("%s information %d and %d differ in %d bits, want ≥ %d", c.name, i, j, d, c.min)
				}
			}
		}
	}
}

// TestReedSolomon: the error correction of "HELLO WORLD" as version 1-M
// (alphanumeric), the example every QR tutorial walks through.
func TestReedSolomon(t *testing.T) {
	data := []byte{32, 91, 11, 120, 209, 114, 220, 77, 67, 64, 236, 17, 236, 17, 236, 17}
	want := []byte{196, 35, 39, 119, 235, 215, 231, 226, 93, 23}
	if got := rsRemainder(data, rsGenerator(10)); !bytes.Equal(got, want) {
		t.Errorf("error correction = %v, want %v", got, want)
	}
	// A codeword polynomial is divisible by the generator: the remainder
	// of data followed by its error correction is zero.
	for n := 7; n <= 30; n++ {
		d := make([]byte, 40)
		for i := range d {
			d[i] = byte(i*37 + n)
		}
		g := rsGenerator(n)
		if r := rsRemainder(append(d, rsRemainder(d, g)...), g); !bytes.Equal(r, make([]byte, n)) {
			t.Errorf("%d codewords: remainder of a codeword = %v", n, r)
		}
	}
}

func TestEncodeChooses(t *testing.T) {
	for _, c := range []struct {
		n       int
		min     Level
		version int
		level   Level
	}{
		{1, M, 1, H},
		{7, M, 1, H},
		{8, M, 1, Q},
		{14, M, 1, M},
		{15, M, 2, Q}, // 2-Q holds 20 bytes, 2-H 14
		{17, L, 1, L},
		{84, M, 5, M},
		{2331, M, 40, M},
		{2953, L, 40, L},
	} {
		code, err := Encode(bytes.Repeat([]byte("x"), c.n), c.min)
		if err != nil {
			t.Errorf("%d bytes at %v: %v", c.n, c.min, err)
			continue
		}
		if code.Version != c.version || code.Level != c.level || code.Size != 17+4*c.version {
			t.Errorf("%d bytes at %v: version %d-%v size %d, want %d-%v", c.n, c.min, code.Version, code.Level, code.Size, c.version, c.level)
		}
	}
	for _, c := range []struct {
		n   int
		min Level
	}{{2332, M}, {2954, L}, {1274, H}, {100000, L}} {
		if _, err := Encode(make([]byte, c.n), c.min); !errors.Is(err, ErrTooLong) {
			t.Errorf("%d bytes at %v: error %v, want ErrTooLong", c.n, c.min, err)
		}
	}
	if _, err := Encode(nil, Level(4)); err == nil {
		t.Error("level 4: no error")
	}
}

// png writes code as a PNG, scale pixels a module, with the quiet zone.
func writePNG(t *testing.T, dir string, name string, c *Code, scale int) string {
	t.Helper()
	side := (c.Size + 8) * scale
	img := image.NewGray(image.Rect(0, 0, side, side))
	for y := range side {
		for x := range side {
			if !c.Dark(x/scale-4, y/scale-4) {
				img.Pix[y*img.Stride+x] = 0xff
			}
		}
	}
	p := filepath.Join(dir, name+".png")
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDecodeZBar reads symbols back with ZBar (Debian zbar-tools), a
// decoder that shares nothing with this encoder: every version at every
// level filled to capacity, and every mask.
func TestDecodeZBar(t *testing.T) {
	zbar := testtool.Need(t, "zbarimg")
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-._~%/?=&"
	text := func(tag string, n int) string {
		b := []byte(tag)
		for len(b) < n {
			b = append(b, alphabet[rng.IntN(len(alphabet))])
		}
		return string(b[:n])
	}
	want := map[string]bool{}
	var files []string
	for v := 1; v <= 40; v++ {
		for l := L; l <= H; l++ {
			s := text(fmt.Sprintf("v%d%v:", v, l), capacity(v, l))
			c, err := Encode([]byte(s), l)
			if err != nil {
				t.Fatal(err)
			}
			if c.Version != v || c.Level != l {
				t.Errorf("%d bytes at %v: %d-%v, want %d-%v", len(s), l, c.Version, c.Level, v, l)
			}
			want[s] = true
			files = append(files, writePNG(t, dir, fmt.Sprintf("v%d%v", v, l), c, 3))
		}
	}
	for m := range 8 {
		s := text(fmt.Sprintf("https://autoconfig.example.net/mask%d?", m), 80)
		c := encode([]byte(s), 5, M, m)
		want[s] = true
		files = append(files, writePNG(t, dir, fmt.Sprintf("mask%d", m), c, 3))
	}
	out, err := exec.Command(zbar, append([]string{"--raw", "-q", "-Sdisable", "-Sqrcode.enable"}, files...)...).Output()
	if err != nil {
		t.Fatalf("zbarimg: %v (%d bytes out)", err, len(out))
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if !want[line] {
			t.Errorf("zbarimg read %q, not one of the texts", line)
		}
		delete(want, line)
	}
	for s := range want {
		t.Errorf("zbarimg did not read %.20q… (%d bytes)", s, len(s))
	}
}

// readBack undoes what encode did to the data: removes the mask, reads
// the modules in placement order and takes the data codewords back out
// of the interleaving.
func readBack(c *Code) []byte {
	s := newSymbol(c.Version)
	s.placeCodewords(nil) // notes the data modules for applyMask
	copy(s.dark, c.dark)
	s.applyMask(c.Mask)
	var cw []byte
	var acc byte
	n := 0
	up := true
	for right := s.size - 1; right >= 1; right -= 2 {
		if right == 6 {
			right = 5
		}
		for k := range s.size {
			y := k
			if up {
				y = s.size - 1 - k
			}
			for x := right; x >= right-1; x-- {
				if s.function[y*s.size+x] {
					continue
				}
				acc = acc<<1 | byte(b2u(s.dark[y*s.size+x]))
				if n++; n%8 == 0 {
					cw = append(cw, acc)
				}
			}
		}
		up = !up
	}
	blocks := int(eccBlocks[c.Level][c.Version])
	total := totalCodewords(c.Version)
	cw = cw[:total]
	short := blocks - total%blocks
	shortData := total/blocks - int(eccPerBlock[c.Level][c.Version])
	per := make([][]byte, blocks)
	i := 0
	for k := 0; k <= shortData; k++ {
		for b := range blocks {
			if k < shortData || b >= short {
				per[b] = append(per[b], cw[i])
				i++
			}
		}
	}
	return slices.Concat(per...)
}

// FuzzEncode: any bytes either encode or are too long for version 40;
// what encodes has intact finder, timing and format patterns and gives
// its data codewords back.
func FuzzEncode(f *testing.F) {
	f.Add([]byte("https://autoconfig.example.net/mobileconfig?emailaddress=fred%40example.net"), uint8(M))
	f.Add([]byte{}, uint8(H))
	f.Add(bytes.Repeat([]byte{0xff}, 300), uint8(L))
	f.Fuzz(func(t *testing.T, data []byte, level uint8) {
		l := Level(level % 4)
		c, err := Encode(data, l)
		if err != nil {
			if len(data) <= capacity(40, l) {
				t.Fatalf("%d bytes at %v: %v", len(data), l, err)
			}
			return
		}
		if c.Level < l || c.Size != 17+4*c.Version || (c.Version > 1 && len(data) <= capacity(c.Version-1, l)) {
			t.Fatalf("%d bytes at %v: %d-%v size %d", len(data), l, c.Version, c.Level, c.Size)
		}
		for _, corner := range [][2]int{{0, 0}, {c.Size - 7, 0}, {0, c.Size - 7}} {
			for d := range 7 {
				x, y := corner[0], corner[1]
				if !c.Dark(x+d, y) || !c.Dark(x, y+d) || !c.Dark(x+6, y+d) || c.Dark(x+1+d%5, y+1) {
					t.Fatalf("finder pattern at %v broken", corner)
				}
			}
		}
		for i := 8; i < c.Size-8; i++ {
			if c.Dark(i, 6) != (i%2 == 0) || c.Dark(6, i) != (i%2 == 0) {
				t.Fatalf("timing pattern broken at %d", i)
			}
		}
		var top, side uint32
		for i := range 15 {
			x, y := 8, i
			switch {
			case i == 6:
				y = 7
			case i == 7:
				y = 8
			case i == 8:
				x, y = 7, 8
			case i > 8:
				x, y = 14-i, 8
			}
			top |= uint32(b2u(c.Dark(x, y))) << i
			if i < 8 {
				x, y = c.Size-1-i, 8
			} else {
				x, y = 8, c.Size-15+i
			}
			side |= uint32(b2u(c.Dark(x, y))) << i
		}
		if want := formatInformation(c.Level, c.Mask); top != want || side != want {
			t.Fatalf("format information %015b and %015b, want %015b", top, side, want)
		}
		if got, want := readBack(c), bitstream(data, c.Version, c.Level); !bytes.Equal(got, want) {
			t.Fatalf("data codewords read back differ")
		}
	})
}

// naivePenalty scores the modules by the rules of 7.8.3.1 as the
// standard words them, one rule at a time (penalty does all in two passes).
func naivePenalty(n int, dark func(x, y int) bool) int {
	p := 0
	lines := func(f func(line, i int) bool) {
		for line := range n {
			for i := 0; i < n; { // rule 1: runs of five or more
				j := i
				for j < n && f(line, j) == f(line, i) {
					j++
				}
				if j-i >= 5 {
					p += 3 + j - i - 5
				}
				i = j
			}
			light := func(from, to int) bool { // outside is light
				for k := from; k <= to; k++ {
					if k >= 0 && k < n && f(line, k) {
						return false
					}
				}
				return true
			}
			for i := 0; i+7 <= n; i++ { // rule 3: 1:1:3:1:1, light on a side
				core := true
				for k, want := range []bool{true, false, true, true, true, false, true} {
					core = core && f(line, i+k) == want
				}
				if core && (light(i-4, i-1) || light(i+7, i+10)) {
					p += 40
				}
			}
		}
	}
	lines(func(y, x int) bool { return dark(x, y) })
	lines(func(x, y int) bool { return dark(x, y) })
	darkCount := 0
	for y := range n {
		for x := range n {
			if dark(x, y) {
				darkCount++
			}
			if x+1 < n && y+1 < n && dark(x, y) == dark(x+1, y) && dark(x, y) == dark(x, y+1) && dark(x, y) == dark(x+1, y+1) {
				p += 3 // rule 2
			}
		}
	}
	percent := float64(darkCount) * 100 / float64(n*n)
	p += 10 * int(math.Abs(percent-50)/5) // rule 4
	return p
}

// TestPenalty: penalty agrees with the naive reading of the rules on
// random grids, and on grids made to hold the finder-like pattern.
func TestPenalty(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 400 {
		n := 21 + 4*rng.IntN(10)
		s := &symbol{size: n, dark: make([]bool, n*n)}
		density := 0.2 + 0.6*rng.Float64()
		for j := range s.dark {
			s.dark[j] = rng.Float64() < density
		}
		if i%2 == 0 { // plant finder-like patterns, some at the edges
			for range 6 {
				y, x := rng.IntN(n), rng.IntN(n-6)
				if i%4 == 0 {
					x = []int{0, n - 7, 4, n - 11}[rng.IntN(4)]
				}
				for k, d := range []bool{true, false, true, true, true, false, true} {
					s.dark[y*n+x+k] = d
				}
			}
		}
		want := naivePenalty(n, func(x, y int) bool { return s.dark[y*n+x] })
		if got := s.penalty(); got != want {
			t.Fatalf("grid %d (%d×%d): penalty %d, the rules give %d", i, n, n, got, want)
		}
	}
}

// TestMaskChoice: Encode takes the mask of the lowest penalty, the lowest
// numbered of equals.
func TestMaskChoice(t *testing.T) {
	for _, c := range []struct {
		n int
		l Level
	}{{0, H}, {10, M}, {60, Q}, {90, M}, {200, L}, {400, M}, {700, H}} {
		data := []byte(strings.Repeat("https://autoconfig.example.net/", 1+c.n/31)[:c.n])
		code, err := Encode(data, c.l)
		if err != nil {
			t.Fatal(err)
		}
		best, bestMask := 0, -1
		for m := range 8 {
			alt := encode(data, code.Version, code.Level, m)
			if p := naivePenalty(alt.Size, alt.Dark); bestMask < 0 || p < best {
				best, bestMask = p, m
			}
		}
		if code.Mask != bestMask {
			t.Errorf("%d bytes at %v: mask %d, want %d", c.n, c.l, code.Mask, bestMask)
		}
	}
}

// TestBitstream: byte mode's header, the terminator and the pad
// codewords, by hand for "ab" as version 1-M (16 data codewords).
func TestBitstream(t *testing.T) {
	// 0100 00000010 01100001 01100010 0000, then 11101100 00010001 …
	want := []byte{0x40, 0x26, 0x16, 0x20, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11}
	if got := bitstream([]byte("ab"), 1, M); !bytes.Equal(got, want) {
		t.Errorf("bitstream = % x, want % x", got, want)
	}
	// Version 10 counts in 16 bits; a full symbol has no room to pad.
	got := bitstream(bytes.Repeat([]byte{0xa5}, capacity(10, L)), 10, L)
	if len(got) != dataCodewords(10, L) || got[0] != 0x40 || got[1] != 0x10 || got[2] != 0xfa || got[len(got)-1] == 0xec {
		t.Errorf("full 10-L bitstream starts % x, ends % x", got[:3], got[len(got)-1])
	}
}

// TestGFMul: the field's tables multiply as the polynomials do.
func TestGFMul(t *testing.T) {
	for a := range 256 {
		for b := range 256 {
			var p, x, y uint16 = 0, uint16(a), uint16(b)
			for ; y != 0; y >>= 1 {
				if y&1 != 0 {
					p ^= x
				}
				if x <<= 1; x&0x100 != 0 {
					x ^= 0x11d
				}
			}
			if got := gfMul(byte(a), byte(b)); got != byte(p) {
				t.Fatalf("gfMul(%d, %d) = %d, want %d", a, b, got, p)
			}
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	url := []byte("https://autoconfig.example.net/mobileconfig?emailaddress=fred.flintstone%40example.net")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(url, M); err != nil {
			b.Fatal(err)
		}
	}
}
