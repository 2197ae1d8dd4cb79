package serve

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// Schemas a POX Autodiscover request may ask for (PROTOCOLS.md §3.2, §4).
const (
	schemaOutlook    = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
	schemaMobileSync = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
	nsMobileSyncReq  = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"
)

// poxRequest is what the server reads from an Autodiscover request body.
type poxRequest struct {
	EMailAddress string
	// Schema is the AcceptableResponseSchema; when the request has none,
	// the one its namespace implies (mobilesync or outlook).
	Schema string
}

// maxPOXDepth bounds element nesting; a real request is three deep.
const maxPOXDepth = 32

// Errors of decodePOXRequest. They are values, so a refused body costs no
// allocation either.
var (
	errNotUTF8      = errors.New("the request body is not UTF-8")
	errPOXChar      = errors.New("the request body has a character XML does not allow")
	errPOXDirective = errors.New("the request body has a DOCTYPE or other declaration, which is not accepted")
	errPOXEmpty     = errors.New("the request body is empty")
	errPOXTwoRoots  = errors.New("the request body has more than one root element")
	errPOXRoot      = errors.New("the root element is not Autodiscover")
	errPOXDeep      = errors.New("the request body is nested too deeply")
	errPOXOutside   = errors.New("the request body has text outside the Autodiscover element")
)

// A poxSyntaxError says where the body stops being well-formed XML.
type poxSyntaxError struct {
	offset int
	msg    string
}

func (e *poxSyntaxError) Error() string {
	return fmt.Sprintf("the request body is not well-formed XML: byte %d: %s", e.offset, e.msg)
}

// decodePOXRequest reads an Autodiscover request body:
// Autodiscover/Request/{EMailAddress, AcceptableResponseSchema}. Elements
// are matched by local name without regard to case or namespace, as clients
// differ (PROTOCOLS.md §3.2). A byte-order mark is skipped. Non-UTF-8
// bodies (an XML declaration may name only UTF-8 or ASCII), characters XML
// does not allow, a DOCTYPE or any other <!...> declaration, and entities
// other than XML's five and character references are refused.
//
// It is a small scanner of the XML subset a request needs, checking
// well-formedness as encoding/xml's strict mode does (FuzzDecodePOXRequest
// compares the two), without allocating for a well-formed request beyond
// the address it returns.
func decodePOXRequest(body []byte) (poxRequest, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	if err := checkXMLChars(body); err != nil {
		return poxRequest{}, err
	}
	p := scannerPool.Get().(*poxScanner)
	p.b = body
	err := p.run()
	req, rootNS := poxRequest{EMailAddress: p.email, Schema: p.schema}, p.rootNS
	*p = poxScanner{} // the pool must not keep the body alive
	scannerPool.Put(p)
	if err != nil {
		return poxRequest{}, err
	}
	if req.Schema == "" {
		req.Schema = schemaOutlook
		if rootNS == nsMobileSyncReq {
			req.Schema = schemaMobileSync
		}
	}
	return req, nil
}

// checkXMLChars refuses bodies that are not UTF-8 or hold a character
// outside XML's Char production (control characters, U+FFFE, U+FFFF).
func checkXMLChars(b []byte) error {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return errPOXChar
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return errNotUTF8
		}
		if r == 0xfffe || r == 0xffff {
			return errPOXChar
		}
		i += n
	}
	return nil
}

// scannerPool recycles scanners: one is a kilobyte, too much to allocate
// per request.
var scannerPool = sync.Pool{New: func() any { return new(poxScanner) }}

// poxScanner walks a request body once.
type poxScanner struct {
	b []byte
	i int

	open    [maxPOXDepth][]byte // qualified names of the open elements
	depth   int
	sawRoot bool
	text    []byte // character data directly inside the depth-3 element
	textBuf [256]byte

	rootNS        string
	email, schema string
	gotEmail      bool
	gotSchema     bool
}

func (p *poxScanner) fail(msg string) error { return &poxSyntaxError{offset: p.i, msg: msg} }

func (p *poxScanner) run() error {
	p.text = p.textBuf[:0]
	if err := p.declaration(); err != nil {
		return err
	}
	for p.i < len(p.b) {
		if p.b[p.i] != '<' {
			if err := p.charData(); err != nil {
				return err
			}
			continue
		}
		rest := p.b[p.i:]
		var err error
		switch {
		case bytes.HasPrefix(rest, []byte("<?")):
			err = p.procInst()
		case bytes.HasPrefix(rest, []byte("<!--")):
			err = p.comment()
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			err = p.cdata()
		case bytes.HasPrefix(rest, []byte("<!")):
			return errPOXDirective
		case bytes.HasPrefix(rest, []byte("</")):
			err = p.endTag()
		default:
			err = p.startTag()
		}
		if err != nil {
			return err
		}
	}
	if p.depth > 0 {
		return p.fail("unexpected end of the body: element <" + string(p.open[p.depth-1]) + "> is not closed")
	}
	if !p.sawRoot {
		return errPOXEmpty
	}
	return nil
}

func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (p *poxScanner) skipSpace() {
	for p.i < len(p.b) && isXMLSpace(p.b[p.i]) {
		p.i++
	}
}

// declaration reads an XML declaration at the very start and refuses an
// encoding other than UTF-8 or its ASCII subset.
func (p *poxScanner) declaration() error {
	if !bytes.HasPrefix(p.b, []byte("<?")) {
		return nil
	}
	// The target is read as procInst reads it ("<?xml!" is the
	// declaration, "<?xml-stylesheet" is not).
	p.i = 2
	if string(p.name()) != "xml" {
		p.i = 0
		return nil
	}
	end := bytes.Index(p.b, []byte("?>"))
	if end < 0 {
		return p.fail("unterminated XML declaration")
	}
	decl := p.b[p.i:end]
	if v, _ := pseudoAttr(decl, "version"); len(v) > 0 && string(v) != "1.0" {
		return fmt.Errorf("the request body is not well-formed XML: XML version %q is not supported", v)
	}
	if enc, _ := pseudoAttr(decl, "encoding"); len(enc) > 0 {
		switch {
		case bytes.EqualFold(enc, []byte("utf-8")), bytes.EqualFold(enc, []byte("utf8")),
			bytes.EqualFold(enc, []byte("us-ascii")), bytes.EqualFold(enc, []byte("ascii")):
		default:
			return fmt.Errorf("the request body is not well-formed XML: encoding %q is not supported; send UTF-8", enc)
		}
	}
	p.i = end + 2
	return nil
}

// pseudoAttr returns the value of name="value" (or 'value') in an XML
// declaration, found as encoding/xml finds it: no white space around "=",
// an occurrence of name= not followed by a quote is skipped together with
// the byte after it, and a value without its closing quote is none.
func pseudoAttr(decl []byte, name string) ([]byte, bool) {
	key := []byte(name + "=")
	for i := 0; i < len(decl); {
		k := bytes.Index(decl[i:], key)
		if k < 0 || i+k+len(key) >= len(decl) {
			return nil, false
		}
		q := decl[i+k+len(key)]
		i += k + len(key) + 1
		if q == '"' || q == '\'' {
			end := bytes.IndexByte(decl[i:], q)
			if end < 0 {
				return nil, false
			}
			return decl[i : i+end], true
		}
	}
	return nil, false
}

// procInst skips a processing instruction; an XML declaration anywhere
// but at the start is an error.
func (p *poxScanner) procInst() error {
	start := p.i
	p.i += 2
	name := p.name()
	if len(name) == 0 {
		return p.fail("processing instruction without a target")
	}
	if string(name) == "xml" {
		p.i = start
		return p.fail("XML declaration not at the start of the body")
	}
	end := bytes.Index(p.b[p.i:], []byte("?>"))
	if end < 0 {
		return p.fail("unterminated processing instruction")
	}
	p.i += end + 2
	return nil
}

// comment skips <!-- ... -->; "--" may not occur inside.
func (p *poxScanner) comment() error {
	p.i += 4
	end := bytes.Index(p.b[p.i:], []byte("--"))
	if end < 0 {
		return p.fail("unterminated comment")
	}
	p.i += end + 2
	if p.i >= len(p.b) || p.b[p.i] != '>' {
		return p.fail(`"--" inside a comment`)
	}
	p.i++
	return nil
}

// cdata reads <![CDATA[ ... ]]> as character data.
func (p *poxScanner) cdata() error {
	p.i += len("<![CDATA[")
	end := bytes.Index(p.b[p.i:], []byte("]]>"))
	if end < 0 {
		return p.fail("unterminated CDATA section")
	}
	data := p.b[p.i : p.i+end]
	p.i += end + 3
	return p.addText(data, false)
}

// charData reads the text up to the next '<', resolving references.
func (p *poxScanner) charData() error {
	end := bytes.IndexByte(p.b[p.i:], '<')
	if end < 0 {
		end = len(p.b) - p.i
	}
	data := p.b[p.i : p.i+end]
	if i := bytes.Index(data, []byte("]]>")); i >= 0 {
		p.i += i
		return p.fail("]]> outside a CDATA section")
	}
	if err := p.addText(data, true); err != nil {
		return err
	}
	p.i += end
	return nil
}

// addText records character data found at the current depth: outside the
// root only white space may appear; inside the third level it is the
// value of EMailAddress or AcceptableResponseSchema.
func (p *poxScanner) addText(data []byte, refs bool) error {
	if p.depth == 0 {
		if len(bytes.TrimLeft(data, " \t\r\n")) > 0 {
			return errPOXOutside
		}
		return nil
	}
	if !refs {
		if p.depth == 3 {
			p.text = append(p.text, data...)
		}
		return nil
	}
	for len(data) > 0 {
		amp := bytes.IndexByte(data, '&')
		if amp < 0 {
			if p.depth == 3 {
				p.text = append(p.text, data...)
			}
			return nil
		}
		if p.depth == 3 {
			p.text = append(p.text, data[:amp]...)
		}
		var (
			n   int
			err error
		)
		if p.depth == 3 {
			p.text, n, err = p.reference(p.text, data[amp:])
		} else {
			_, n, err = p.reference(nil, data[amp:])
		}
		if err != nil {
			return err
		}
		data = data[amp+n:]
	}
	return nil
}

// reference decodes the reference at the start of ref ("&lt;", "&#64;")
// onto out, returning how many bytes it took.
func (p *poxScanner) reference(out, ref []byte) ([]byte, int, error) {
	semi := bytes.IndexByte(ref, ';')
	if semi < 2 || semi > 12 {
		return out, 0, p.fail("invalid character entity (only &lt; &gt; &amp; &apos; &quot; and &#...; are accepted)")
	}
	name := ref[1:semi]
	switch string(name) {
	case "lt":
		return append(out, '<'), semi + 1, nil
	case "gt":
		return append(out, '>'), semi + 1, nil
	case "amp":
		return append(out, '&'), semi + 1, nil
	case "apos":
		return append(out, '\''), semi + 1, nil
	case "quot":
		return append(out, '"'), semi + 1, nil
	}
	if name[0] != '#' || len(name) < 2 {
		return out, 0, p.fail("undefined entity &" + string(name) + ";")
	}
	var r rune
	digits, base := name[1:], rune(10)
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	if len(digits) == 0 {
		return out, 0, p.fail("invalid character reference")
	}
	for _, c := range digits {
		var d rune
		switch {
		case c >= '0' && c <= '9':
			d = rune(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = rune(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = rune(c-'A') + 10
		default:
			return out, 0, p.fail("invalid character reference")
		}
		r = r*base + d
		if r > utf8.MaxRune {
			return out, 0, p.fail("invalid character reference")
		}
	}
	if !isXMLChar(r) {
		return out, 0, p.fail("character reference to a character XML does not allow")
	}
	return utf8.AppendRune(out, r), semi + 1, nil
}

// isXMLChar reports whether r is in XML 1.0's Char production.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0a || r == 0x0d ||
		r >= 0x20 && r <= 0xd7ff || r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= utf8.MaxRune
}

// name reads an XML name: an ASCII letter, '_' or ':', then also digits,
// '-' and '.'. Names with other characters, which XML allows, are refused:
// no Autodiscover request has one.
func (p *poxScanner) name() []byte {
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':' ||
			p.i > start && (c >= '0' && c <= '9' || c == '-' || c == '.')
		if !ok {
			break
		}
		p.i++
	}
	return p.b[start:p.i]
}

// qualifiedName reads an element or attribute name; a name with more than
// one colon is none (nil), as in Namespaces in XML and encoding/xml.
func (p *poxScanner) qualifiedName() []byte {
	q := p.name()
	if bytes.Count(q, []byte(":")) > 1 {
		return nil
	}
	return q
}

// localName is the part of a qualified name after the prefix.
func localName(q []byte) []byte {
	if i := bytes.IndexByte(q, ':'); i > 0 && i < len(q)-1 {
		return q[i+1:]
	}
	return q
}

func (p *poxScanner) startTag() error {
	p.i++ // '<'
	qname := p.qualifiedName()
	if len(qname) == 0 {
		return p.fail("expected an element name after <")
	}
	var prefix []byte
	if i := bytes.IndexByte(qname, ':'); i > 0 && i < len(qname)-1 {
		prefix = qname[:i]
	}
	ns, nsFound := []byte(nil), false
	for {
		p.skipSpace()
		if p.i >= len(p.b) {
			return p.fail("unexpected end of the body in a tag")
		}
		if c := p.b[p.i]; c == '>' || c == '/' {
			break
		}
		aname := p.qualifiedName()
		if len(aname) == 0 {
			return p.fail("expected an attribute name")
		}
		p.skipSpace()
		if p.i >= len(p.b) || p.b[p.i] != '=' {
			return p.fail("attribute without a value")
		}
		p.i++
		p.skipSpace()
		if p.i >= len(p.b) || (p.b[p.i] != '"' && p.b[p.i] != '\'') {
			return p.fail("unquoted attribute value")
		}
		q := p.b[p.i]
		p.i++
		end := bytes.IndexByte(p.b[p.i:], q)
		if end < 0 {
			return p.fail("unterminated attribute value")
		}
		val := p.b[p.i : p.i+end]
		if bytes.IndexByte(val, '<') >= 0 {
			return p.fail("'<' in an attribute value")
		}
		for v := val; ; {
			amp := bytes.IndexByte(v, '&')
			if amp < 0 {
				break
			}
			_, n, err := p.reference(nil, v[amp:])
			if err != nil {
				return err
			}
			v = v[amp+n:]
		}
		p.i += end + 1
		if p.depth == 0 && !nsFound {
			switch {
			case prefix == nil && string(aname) == "xmlns",
				prefix != nil && len(aname) == 6+len(prefix) && string(aname[:6]) == "xmlns:" && bytes.Equal(aname[6:], prefix):
				ns, nsFound = val, true
			}
		}
	}
	selfClosing := p.b[p.i] == '/'
	if selfClosing {
		p.i++
		if p.i >= len(p.b) || p.b[p.i] != '>' {
			return p.fail("expected > after /")
		}
	}
	p.i++ // '>'

	if p.depth == 0 {
		if p.sawRoot {
			return errPOXTwoRoots
		}
		p.sawRoot = true
		if !strings.EqualFold(string(localName(qname)), "Autodiscover") {
			return errPOXRoot
		}
		if bytes.IndexByte(ns, '&') < 0 && string(ns) == nsMobileSyncReq {
			p.rootNS = nsMobileSyncReq
		}
	}
	if p.depth == maxPOXDepth {
		return errPOXDeep
	}
	p.open[p.depth] = qname
	p.depth++
	p.text = p.text[:0]
	if selfClosing {
		p.closeElement()
	}
	return nil
}

func (p *poxScanner) endTag() error {
	p.i += 2
	qname := p.qualifiedName()
	p.skipSpace()
	if p.i >= len(p.b) || p.b[p.i] != '>' {
		return p.fail("expected > to end the end tag")
	}
	if p.depth == 0 {
		return p.fail("unexpected end tag </" + string(qname) + ">")
	}
	if !bytes.Equal(qname, p.open[p.depth-1]) {
		return p.fail("element <" + string(p.open[p.depth-1]) + "> closed by </" + string(qname) + ">")
	}
	p.i++
	p.closeElement()
	return nil
}

// closeElement ends the innermost element, taking its text when it is one
// of the two values a request carries.
func (p *poxScanner) closeElement() {
	p.depth--
	if p.depth != 2 || !strings.EqualFold(string(localName(p.open[1])), "Request") {
		return
	}
	name := localName(p.open[2])
	if bytes.IndexByte(p.text, '\r') >= 0 {
		// XML reads every line break as "\n".
		p.text = bytes.ReplaceAll(bytes.ReplaceAll(p.text, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
	}
	switch {
	case !p.gotEmail && strings.EqualFold(string(name), "EMailAddress"):
		p.email, p.gotEmail = string(bytes.TrimSpace(p.text)), true
	case !p.gotSchema && strings.EqualFold(string(name), "AcceptableResponseSchema"):
		v := bytes.TrimSpace(p.text)
		switch string(v) {
		case schemaOutlook:
			p.schema = schemaOutlook
		case schemaMobileSync:
			p.schema = schemaMobileSync
		default:
			p.schema = string(v)
		}
		p.gotSchema = true
	}
}
