// Package render writes the documents each mail client's discovery protocol
// expects, from a discover.Snapshot.
//
// A document is encoded once per snapshot by a real encoder (encoding/xml,
// encoding/json, html/template), with marker strings where the request's
// address goes, and compiled into a Template. Answering a request appends the
// template's literal bytes and the address fields, each escaped for the
// document's syntax. So no XML, JSON or HTML is ever built from strings, and a
// request costs a copy, not an encoding.
package render

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html"
	"net/url"
)

// An Address is the validated address a request is answered for.
type Address struct {
	Local  string // local part as the client sent it (RFC 5321 dot-string or quoted string)
	Domain string // lower-case A-labels
	// LoginDomain is the domain the mailbox lives in: the target of an
	// alias domain, else Domain. Users of an alias domain log in with
	// Local@LoginDomain (iRedMail's and PostfixAdmin's password queries
	// match mailbox.username).
	LoginDomain string
}

// String returns Local@Domain.
func (a Address) String() string { return a.Local + "@" + a.Domain }

// Field names a part of the Address that a Template substitutes.
type Field uint8

const (
	FieldAddress      Field = iota // Local@Domain
	FieldLocal                     // Local
	FieldDomain                    // Domain
	FieldLoginAddress              // Local@LoginDomain
	FieldLoginDomain               // LoginDomain
	// FieldAddressQuery is Local@Domain escaped as a URL query value
	// (url.QueryEscape) before the document's own escaping: for links
	// such as /mobileconfig?emailaddress=...
	FieldAddressQuery
	// FieldProfileQR is a hole for raw HTML, not an address field: the QR
	// code of the address's profile link (ProfileQR), which AppendQR
	// writes there and Append leaves out.
	FieldProfileQR
	numFields
)

// Markers are the strings a renderer writes where a Field goes. They are
// plain ASCII letters and digits, so every encoder passes them through
// unchanged, and unlikely enough never to occur in a real value.
var markers = [numFields]string{
	FieldAddress:      "MAILAUTOCONFxADDRESSx9f3c",
	FieldLocal:        "MAILAUTOCONFxLOCALx9f3c",
	FieldDomain:       "MAILAUTOCONFxDOMAINx9f3c",
	FieldLoginAddress: "MAILAUTOCONFxLOGINADDRESSx9f3c",
	FieldLoginDomain:  "MAILAUTOCONFxLOGINDOMAINx9f3c",
	FieldAddressQuery: "MAILAUTOCONFxADDRESSQUERYx9f3c",
	FieldProfileQR:    "MAILAUTOCONFxPROFILEQRx9f3c",
}

// Marker returns the string a renderer writes in place of f.
func Marker(f Field) string { return markers[f] }

// Syntax says how substituted values are escaped.
type Syntax uint8

const (
	SyntaxXML  Syntax = iota // XML text and attribute values (also plists)
	SyntaxJSON               // inside a JSON string
	SyntaxHTML               // HTML text and quoted attribute values
)

// A Template is a rendered document with holes for address fields.
// It is immutable and safe for concurrent use.
type Template struct {
	ContentType string
	syntax      Syntax
	parts       []part
	size        int // literal bytes, for sizing buffers
}

type part struct {
	lit   []byte // literal bytes, or nil for a field
	field Field
}

// Compile splits rendered, which an encoder produced with Marker strings in
// place of fields, into a Template.
func Compile(contentType string, syntax Syntax, rendered []byte) *Template {
	t := &Template{ContentType: contentType, syntax: syntax}
	rest := rendered
	for len(rest) > 0 {
		at, f := -1, Field(0)
		for i, m := range markers {
			if j := bytes.Index(rest, []byte(m)); j >= 0 && (at < 0 || j < at) {
				at, f = j, Field(i)
			}
		}
		if at < 0 {
			t.addLiteral(rest)
			break
		}
		t.addLiteral(rest[:at])
		t.parts = append(t.parts, part{field: f})
		rest = rest[at+len(markers[f]):]
	}
	return t
}

func (t *Template) addLiteral(b []byte) {
	if len(b) == 0 {
		return
	}
	t.parts = append(t.parts, part{lit: bytes.Clone(b)})
	t.size += len(b)
}

// Static reports whether the template has no fields: its bytes are the
// same for every request.
func (t *Template) Static() bool {
	for _, p := range t.parts {
		if p.lit == nil {
			return false
		}
	}
	return true
}

// Size is a good initial capacity for Append's buffer.
func (t *Template) Size() int { return t.size + 128 }

// Append appends the document for a to dst, each field escaped for the
// template's syntax. A FieldProfileQR hole stays empty.
func (t *Template) Append(dst []byte, a Address) []byte {
	return t.AppendQR(dst, a, nil)
}

// AppendQR is Append with qr, raw HTML that the caller made with
// ProfileQR, written as it is in the FieldProfileQR hole.
func (t *Template) AppendQR(dst []byte, a Address, qr []byte) []byte {
	for _, p := range t.parts {
		if p.lit != nil {
			dst = append(dst, p.lit...)
			continue
		}
		// Escaping works character by character, so a field is escaped in
		// pieces rather than concatenated first; "@" needs no escaping in
		// any syntax.
		switch p.field {
		case FieldAddress:
			dst = append(t.appendEscaped(dst, a.Local), '@')
			dst = t.appendEscaped(dst, a.Domain)
		case FieldLocal:
			dst = t.appendEscaped(dst, a.Local)
		case FieldDomain:
			dst = t.appendEscaped(dst, a.Domain)
		case FieldLoginAddress:
			dst = append(t.appendEscaped(dst, a.Local), '@')
			dst = t.appendEscaped(dst, a.loginDomain())
		case FieldLoginDomain:
			dst = t.appendEscaped(dst, a.loginDomain())
		case FieldAddressQuery:
			// url.QueryEscape returns its argument unchanged, without
			// allocating, when nothing needs escaping.
			dst = t.appendEscaped(dst, url.QueryEscape(a.Local))
			dst = append(dst, "%40"...)
			dst = t.appendEscaped(dst, url.QueryEscape(a.Domain))
		case FieldProfileQR:
			dst = append(dst, qr...)
		default:
			panic(fmt.Sprintf("render: unknown field %d", p.field))
		}
	}
	return dst
}

func (a Address) loginDomain() string {
	if a.LoginDomain == "" {
		return a.Domain
	}
	return a.LoginDomain
}

// appendEscaped appends s escaped for the template's syntax. The escaping
// is the standard library's; plain values, which every encoder passes
// through unchanged, are appended as they are without allocating.
func (t *Template) appendEscaped(dst []byte, s string) []byte {
	if plain(s) {
		return append(dst, s...)
	}
	switch t.syntax {
	case SyntaxJSON:
		b, _ := json.Marshal(s) // a string always marshals
		return append(dst, b[1:len(b)-1]...)
	case SyntaxHTML:
		return append(dst, html.EscapeString(s)...)
	}
	var buf bytes.Buffer
	xml.EscapeText(&buf, []byte(s)) // writes to a bytes.Buffer never fail
	return append(dst, buf.Bytes()...)
}

// plain reports whether s is printable ASCII free of every character that
// XML, JSON or HTML escaping changes.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e:
			return false
		case c == '<' || c == '>' || c == '&' || c == '\'' || c == '"' || c == '\\':
			return false
		}
	}
	return true
}
