// Package qrcode encodes bytes as a QR code symbol (ISO/IEC 18004:2015,
// model 2): byte mode, the smallest version that holds the bytes at the
// asked error correction level, the level raised while the bytes still
// fit that version, and the mask the standard's penalty rules choose.
//
// It is what the settings page needs to put a link under a phone's
// camera, no more: no numeric, alphanumeric, kanji or ECI segments, no
// Micro QR, no structured append. Nothing is built at start-up (the
// field's 512-byte tables come with the first encoding); an encoding
// allocates some kilobytes (14 for a 90-byte link) and takes some 200 µs.
package qrcode

import (
	"errors"
	"fmt"
	"sync"
)

// Level is an error correction level: the share of codewords a reader
// can restore (L 7 %, M 15 %, Q 25 %, H 30 %).
type Level int

// The levels, weakest first.
const (
	L Level = iota
	M
	Q
	H
)

func (l Level) String() string {
	if l < L || l > H {
		return fmt.Sprintf("Level(%d)", int(l))
	}
	return "LMQH"[l : l+1]
}

// formatBits is the level's two bits in the format information (table 12).
func (l Level) formatBits() uint32 {
	return [...]uint32{L: 1, M: 0, Q: 3, H: 2}[l]
}

// ErrTooLong is returned when the bytes do not fit a version 40 symbol at
// the asked level.
var ErrTooLong = errors.New("qrcode: data too long")

// Code is an encoded symbol: Size×Size modules, without the quiet zone.
type Code struct {
	Version int   // 1 to 40
	Level   Level // the level used, at least the one asked
	Mask    int   // 0 to 7
	Size    int   // 17 + 4×Version modules a side
	dark    []bool
}

// Dark reports whether the module in column x, row y is dark. Modules
// outside the symbol are light (the quiet zone).
func (c *Code) Dark(x, y int) bool {
	if x < 0 || y < 0 || x >= c.Size || y >= c.Size {
		return false
	}
	return c.dark[y*c.Size+x]
}

// Encode returns data as the smallest symbol that holds it at level min
// or better, in byte mode.
func Encode(data []byte, min Level) (*Code, error) {
	if min < L || min > H {
		return nil, fmt.Errorf("qrcode: no error correction level %d", int(min))
	}
	for v := 1; v <= 40; v++ {
		if !fits(len(data), v, min) {
			continue
		}
		level := min
		for level < H && fits(len(data), v, level+1) {
			level++
		}
		return encode(data, v, level, -1), nil
	}
	return nil, fmt.Errorf("%w: %d bytes, at most %d at level %v", ErrTooLong, len(data), capacity(40, min), min)
}

// capacity returns how many bytes a symbol of version v holds at level l
// in byte mode.
func capacity(v int, l Level) int {
	return (dataCodewords(v, l)*8 - 4 - countBits(v)) / 8
}

func fits(n, v int, l Level) bool { return n <= capacity(v, l) }

// countBits is the width of byte mode's character count (table 3).
func countBits(v int) int {
	if v <= 9 {
		return 8
	}
	return 16
}

// Error correction per version (index 1 to 40) and level (table 9): the
// codewords of error correction in each block, and the number of blocks.
// The blocks share the rest of the version's codewords as data, the
// later ones taking one more when they do not divide evenly.
var (
	eccPerBlock = [4][41]int8{
		L: {0, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28, 28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30},
		M: {0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28},
		Q: {0, 13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30, 28, 30, 30, 30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30},
		H: {0, 17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28, 30, 24, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30},
	}
	eccBlocks = [4][41]int8{
		L: {0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8, 8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25},
		M: {0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49},
		Q: {0, 1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20, 23, 23, 25, 27, 29, 34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68},
		H: {0, 1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25, 25, 34, 30, 32, 35, 37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81},
	}
)

// totalCodewords is the number of 8-bit codewords a version v symbol
// holds: its modules less the function patterns, by eight (the rest are
// remainder bits).
func totalCodewords(v int) int {
	size := 17 + 4*v
	n := size * size
	n -= 3 * 8 * 8       // finder patterns with their separators
	n -= 2 * (size - 16) // timing patterns between them
	n -= 2*15 + 1        // format information, twice, and the dark module
	if a := len(alignmentPositions(v)); a > 0 {
		n -= 25 * (a*a - 3)  // alignment patterns, but not on the finders
		n += 2 * 5 * (a - 2) // those on a timing pattern share five modules
	}
	if v >= 7 {
		n -= 2 * 18 // version information, twice
	}
	return n / 8
}

func dataCodewords(v int, l Level) int {
	return totalCodewords(v) - int(eccPerBlock[l][v])*int(eccBlocks[l][v])
}

// alignmentPositions returns the rows (and columns) of the alignment
// patterns' centres of version v (annex E): 6, then evenly spaced up to
// size-7 with an even step. Version 32 is the one exception to the rule.
func alignmentPositions(v int) []int {
	if v == 1 {
		return nil
	}
	size := 17 + 4*v
	n := v/7 + 2
	step := 26
	if v != 32 {
		span := size - 13 // from 6 to size-7
		step = (span + n - 2) / (n - 1)
		step += step & 1
	}
	pos := make([]int, n)
	pos[0] = 6
	for i, p := n-1, size-7; i > 0; i, p = i-1, p-step {
		pos[i] = p
	}
	return pos
}

// bch returns data (of its width) followed by the remainder of its
// division by the generator polynomial gen of degree deg over GF(2).
func bch(data uint32, gen uint32, deg int) uint32 {
	r := data << deg
	for i := 31; i >= deg; i-- {
		if r&(1<<i) != 0 {
			r ^= gen << (i - deg)
		}
	}
	return data<<deg | r
}

// formatInformation is the 15-bit format information of level l and mask
// (7.9): BCH(15,5), masked with 101010000010010.
func formatInformation(l Level, mask int) uint32 {
	return bch(l.formatBits()<<3|uint32(mask), 0x537, 10) ^ 0x5412
}

// versionInformation is the 18-bit version information (7.10): BCH(18,6).
func versionInformation(v int) uint32 {
	return bch(uint32(v), 0x1f25, 12)
}

// encode returns data as a symbol of version v and level l, which must
// hold it; mask -1 chooses the mask by penalty.
func encode(data []byte, v int, l Level, mask int) *Code {
	s := newSymbol(v)
	s.placeCodewords(interleave(bitstream(data, v, l), v, l))
	if mask < 0 {
		best := 0
		for m := range 8 {
			s.setFormat(l, m)
			s.applyMask(m)
			if p := s.penalty(); m == 0 || p < best {
				best, mask = p, m
			}
			s.applyMask(m) // undo
		}
	}
	s.setFormat(l, mask)
	s.applyMask(mask)
	return &Code{Version: v, Level: l, Mask: mask, Size: s.size, dark: s.dark}
}

// bitstream returns the data codewords of data in byte mode (7.4): the
// mode indicator, the count, the bytes, a terminator of up to four zero
// bits, zeros to the byte and the pad codewords 11101100 00010001.
func bitstream(data []byte, v int, l Level) []byte {
	n := dataCodewords(v, l)
	out := make([]byte, 0, n)
	var acc uint32 // bits not yet a whole byte, in the low accBits
	accBits := 0
	put := func(val uint32, bits int) {
		for bits > 0 {
			take := min(bits, 8)
			bits -= take
			acc = acc<<take | (val>>bits)&(1<<take-1)
			accBits += take
			if accBits >= 8 {
				accBits -= 8
				out = append(out, byte(acc>>accBits))
			}
		}
	}
	put(0b0100, 4)
	put(uint32(len(data)), countBits(v))
	for _, b := range data {
		put(uint32(b), 8)
	}
	put(0, min(4, n*8-len(out)*8-accBits))
	if accBits > 0 {
		put(0, 8-accBits)
	}
	for pad := byte(0xec); len(out) < n; pad ^= 0xec ^ 0x11 {
		out = append(out, pad)
	}
	return out
}

// interleave splits the data codewords into the blocks of version v at
// level l, adds each block's error correction codewords and returns the
// final sequence (7.6): the blocks' data codewords in turn, then their
// error correction codewords in turn.
func interleave(data []byte, v int, l Level) []byte {
	nBlocks := int(eccBlocks[l][v])
	ecLen := int(eccPerBlock[l][v])
	total := totalCodewords(v)
	short := nBlocks - total%nBlocks // blocks of total/nBlocks codewords
	shortData := total/nBlocks - ecLen
	gen := rsGenerator(ecLen)
	blocks := make([][]byte, nBlocks)
	ecc := make([][]byte, nBlocks)
	for i, off := 0, 0; i < nBlocks; i++ {
		n := shortData
		if i >= short {
			n++
		}
		blocks[i] = data[off : off+n]
		ecc[i] = rsRemainder(blocks[i], gen)
		off += n
	}
	out := make([]byte, 0, total)
	for i := 0; i <= shortData; i++ {
		for b := range blocks {
			if i < len(blocks[b]) {
				out = append(out, blocks[b][i])
			}
		}
	}
	for i := range ecLen {
		for b := range ecc {
			out = append(out, ecc[b][i])
		}
	}
	return out
}

// gf is GF(256) with the field's primitive polynomial x⁸+x⁴+x³+x²+1
// (7.5.2), as powers of α (exp) and their inverse (log), made on first use.
var gf = sync.OnceValue(func() *struct{ exp, log [256]byte } {
	t := new(struct{ exp, log [256]byte })
	x := 1
	for i := range 255 {
		t.exp[i] = byte(x)
		t.log[x] = byte(i)
		x <<= 1
		if x&0x100 != 0 {
			x ^= 0x11d
		}
	}
	return t
})

func gfMul(a, b byte) byte {
	if a == 0 || b == 0 {
		return 0
	}
	t := gf()
	return t.exp[(int(t.log[a])+int(t.log[b]))%255]
}

// rsGenerator returns the coefficients of the generator polynomial
// (x-α⁰)(x-α¹)…(x-αⁿ⁻¹) of n error correction codewords, highest degree
// first, without the leading 1.
func rsGenerator(n int) []byte {
	g := make([]byte, n)
	g[n-1] = 1 // the polynomial 1, as the constant term
	root := byte(1)
	for range n {
		// Multiply by (x + root): shift up, add root times the old.
		for j := range n {
			g[j] = gfMul(g[j], root)
			if j+1 < n {
				g[j] ^= g[j+1]
			}
		}
		root = gfMul(root, 2)
	}
	return g
}

// rsRemainder returns data(x)·xⁿ mod gen(x): the error correction
// codewords of a block.
func rsRemainder(data, gen []byte) []byte {
	r := make([]byte, len(gen))
	for _, d := range data {
		f := d ^ r[0]
		copy(r, r[1:])
		r[len(r)-1] = 0
		for j, g := range gen {
			r[j] ^= gfMul(g, f)
		}
	}
	return r
}

// symbol is a symbol being built.
type symbol struct {
	size     int
	dark     []bool
	function []bool  // finder, separator, timing, alignment, format, version
	data     []int32 // the modules that are not, in placement order
	masks    []byte  // for each of data, the masks (bit m) that invert it
	columns  []bool  // penalty's scratch: dark, transposed
}

func newSymbol(v int) *symbol {
	size := 17 + 4*v
	s := &symbol{size: size, dark: make([]bool, size*size), function: make([]bool, size*size)}
	s.data = make([]int32, 0, totalCodewords(v)*8+7)
	s.masks = make([]byte, 0, cap(s.data))
	for i := range size { // timing patterns
		s.set(6, i, i%2 == 0)
		s.set(i, 6, i%2 == 0)
	}
	for _, c := range [][2]int{{3, 3}, {size - 4, 3}, {3, size - 4}} {
		for dy := -4; dy <= 4; dy++ { // finder and separator
			for dx := -4; dx <= 4; dx++ {
				x, y := c[0]+dx, c[1]+dy
				if x < 0 || y < 0 || x >= size || y >= size {
					continue
				}
				d := max(abs(dx), abs(dy))
				s.set(x, y, d != 2 && d != 4)
			}
		}
	}
	pos := alignmentPositions(v)
	for i, cy := range pos {
		for j, cx := range pos {
			if (i == 0 && j == 0) || (i == 0 && j == len(pos)-1) || (i == len(pos)-1 && j == 0) {
				continue // on a finder pattern
			}
			for dy := -2; dy <= 2; dy++ {
				for dx := -2; dx <= 2; dx++ {
					s.set(cx+dx, cy+dy, max(abs(dx), abs(dy)) != 1)
				}
			}
		}
	}
	s.setFormat(L, 0) // reserve the area; the real bits come with the mask
	if v >= 7 {
		bits := versionInformation(v)
		for i := range 18 {
			d := bits>>i&1 != 0
			a, b := size-11+i%3, i/3
			s.set(a, b, d)
			s.set(b, a, d)
		}
	}
	return s
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// set makes the module in column x, row y a function module of colour d.
func (s *symbol) set(x, y int, d bool) {
	s.dark[y*s.size+x] = d
	s.function[y*s.size+x] = true
}

// setFormat writes the format information of level l and mask m, both
// copies, and the dark module beside the lower one (7.9.1).
func (s *symbol) setFormat(l Level, m int) {
	bits := formatInformation(l, m)
	bit := func(i int) bool { return bits>>i&1 != 0 }
	// Beside the top left finder: bits 0-7 down column 8 (stepping over
	// the timing row), bits 8-14 leftwards along row 8 (over the column).
	for i := range 6 {
		s.set(8, i, bit(i))
	}
	s.set(8, 7, bit(6))
	s.set(8, 8, bit(7))
	s.set(7, 8, bit(8))
	for i := 9; i < 15; i++ {
		s.set(14-i, 8, bit(i))
	}
	// The copy: bits 0-7 along row 8 from the right edge, bits 8-14 down
	// column 8 to the bottom edge.
	for i := range 8 {
		s.set(s.size-1-i, 8, bit(i))
	}
	for i := 8; i < 15; i++ {
		s.set(8, s.size-15+i, bit(i))
	}
	s.set(8, s.size-8, true)
}

// placeCodewords puts the codewords' bits, most significant first, in the
// modules no function pattern takes (7.7.3): two columns at a time from
// the right, up then down, stepping over the vertical timing pattern;
// the remainder bits stay light. It notes those modules and their masks
// for applyMask.
func (s *symbol) placeCodewords(cw []byte) {
	i, n := 0, len(cw)*8
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
				j := y*s.size + x
				if s.function[j] {
					continue
				}
				s.data = append(s.data, int32(j))
				var masks byte
				for m := range 8 {
					masks |= byte(b2u(maskDark(m, y, x))) << m
				}
				s.masks = append(s.masks, masks)
				if i < n {
					s.dark[j] = cw[i>>3]>>(7-i&7)&1 != 0
					i++
				}
			}
		}
		up = !up
	}
}

// maskDark reports whether mask m inverts the module in row i, column j
// (table 10).
func maskDark(m, i, j int) bool {
	switch m {
	case 0:
		return (i+j)%2 == 0
	case 1:
		return i%2 == 0
	case 2:
		return j%3 == 0
	case 3:
		return (i+j)%3 == 0
	case 4:
		return (i/2+j/3)%2 == 0
	case 5:
		return i*j%2+i*j%3 == 0
	case 6:
		return (i*j%2+i*j%3)%2 == 0
	default:
		return (i*j%3+(i+j)%2)%2 == 0
	}
}

// applyMask inverts the data modules mask m selects; twice undoes it.
func (s *symbol) applyMask(m int) {
	for k, j := range s.data {
		if s.masks[k]>>m&1 != 0 {
			s.dark[j] = !s.dark[j]
		}
	}
}

// penalty scores the symbol by the four rules of 7.8.3.1: runs of five or
// more modules of a colour in a row or column (3, and 1 for each module
// beyond five), 2×2 blocks of a colour (3 each), the finder-like
// 1:1:3:1:1 with four light modules on one side (40 each, the quiet zone
// counting as light), and the dark share's distance from half (10 for
// each whole 5 %).
func (s *symbol) penalty() int {
	n := s.size
	if s.columns == nil {
		s.columns = make([]bool, n*n)
	}
	for y := range n {
		for x := range n {
			s.columns[x*n+y] = s.dark[y*n+x]
		}
	}
	p := linePenalty(s.dark, n) + linePenalty(s.columns, n)
	darkCount := 0
	for y := range n {
		row, next := s.dark[y*n:y*n+n], s.dark[min(y+1, n-1)*n:]
		for x, d := range row {
			if d {
				darkCount++
			}
			if x+1 < n && y+1 < n && d == row[x+1] && d == next[x] && d == next[x+1] {
				p += 3
			}
		}
	}
	// The whole 5 % steps of |dark/total - 50 %|.
	p += 10 * (abs(darkCount*20-n*n*10) / (n * n))
	return p
}

// linePenalty scores the rows of the n×n modules m by rules 1 and 3. A
// finder-like pattern with light on both sides counts once.
func linePenalty(m []bool, n int) int {
	const (
		lightBefore = 0b00001011101
		lightAfter  = 0b10111010000
		lightBoth   = 0b000010111010000
	)
	p := 0
	for y := range n {
		run := 0
		var w uint32 // the last 15 modules, dark = 1; light before the row
		finderLike := func() {
			switch {
			case w&0x7ff == lightBefore,
				w&0x7ff == lightAfter && w&0x7fff != lightBoth:
				p += 40
			}
		}
		for x, d := range m[y*n : y*n+n] {
			if x > 0 && d == m[y*n+x-1] {
				run++
				if run == 5 {
					p += 3
				} else if run > 5 {
					p++
				}
			} else {
				run = 1
			}
			w = w<<1 | b2u(d)
			finderLike()
		}
		for range 4 { // into the quiet zone after the row
			w <<= 1
			finderLike()
		}
	}
	return p
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
