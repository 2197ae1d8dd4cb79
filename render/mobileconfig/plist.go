package mobileconfig

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
)

// A dict is a property list dictionary. Its entries keep their order, so the
// output is the same on every run; profile.go lists them sorted by key, as
// Apple's own tools write them.
type dict []entry

type entry struct {
	key   string
	value any // string, int, bool, dict or array
}

// An array is a property list array.
type array []any

// The XML property list prologue: the declaration and Apple's DOCTYPE.
var (
	plistDecl    = xml.ProcInst{Target: "xml", Inst: []byte(`version="1.0" encoding="UTF-8"`)}
	plistDoctype = xml.Directive(`DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd"`)
	plistStart   = xml.StartElement{Name: xml.Name{Local: "plist"}, Attr: []xml.Attr{{Name: xml.Name{Local: "version"}, Value: "1.0"}}}
)

// writePlist writes d as an XML property list laid out like the files
// Apple's tools write (tab-indented, <dict> at the left margin). Every
// string goes through encoding/xml's escaper.
func writePlist(w io.Writer, d dict) error {
	// The prologue and the plist element are written before indenting is
	// switched on, so each sits on its own line and <dict> starts at the
	// margin; the dict is indented; the end tag follows with indenting off.
	enc := xml.NewEncoder(w)
	newline := xml.CharData("\n")
	for _, t := range []xml.Token{plistDecl, newline, plistDoctype, newline, plistStart, newline} {
		if err := enc.EncodeToken(t); err != nil {
			return err
		}
	}
	enc.Indent("", "\t")
	if err := encodeValue(enc, d); err != nil {
		return err
	}
	enc.Indent("", "")
	for _, t := range []xml.Token{newline, plistStart.End(), newline} {
		if err := enc.EncodeToken(t); err != nil {
			return err
		}
	}
	return enc.Close()
}

func encodeValue(enc *xml.Encoder, v any) error {
	switch v := v.(type) {
	case string:
		return element(enc, "string", v)
	case int:
		return element(enc, "integer", strconv.Itoa(v))
	case bool:
		name := "false"
		if v {
			name = "true"
		}
		start := xml.StartElement{Name: xml.Name{Local: name}}
		if err := enc.EncodeToken(start); err != nil {
			return err
		}
		return enc.EncodeToken(start.End())
	case dict:
		start := xml.StartElement{Name: xml.Name{Local: "dict"}}
		if err := enc.EncodeToken(start); err != nil {
			return err
		}
		for _, e := range v {
			if err := element(enc, "key", e.key); err != nil {
				return err
			}
			if err := encodeValue(enc, e.value); err != nil {
				return err
			}
		}
		return enc.EncodeToken(start.End())
	case array:
		start := xml.StartElement{Name: xml.Name{Local: "array"}}
		if err := enc.EncodeToken(start); err != nil {
			return err
		}
		for _, x := range v {
			if err := encodeValue(enc, x); err != nil {
				return err
			}
		}
		return enc.EncodeToken(start.End())
	}
	return fmt.Errorf("plist: cannot encode %T", v)
}

// element writes <name>text</name>, text escaped by the encoder.
func element(enc *xml.Encoder, name, text string) error {
	start := xml.StartElement{Name: xml.Name{Local: name}}
	if err := enc.EncodeToken(start); err != nil {
		return err
	}
	if err := enc.EncodeToken(xml.CharData(text)); err != nil {
		return err
	}
	return enc.EncodeToken(start.End())
}
