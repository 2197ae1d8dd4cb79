package mobileconfig

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os/exec"
	"reflect"
	"strconv"
	"testing"

	"github.com/mailautoconf/mailautoconf/internal/testtool"
)

// decodePlist reads an XML property list of dicts, arrays, strings,
// integers and booleans into map[string]any, []any, string, int and bool.
func decodePlist(data []byte) (any, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "plist" {
				return nil, fmt.Errorf("root element %s, want plist", se.Name.Local)
			}
			start, err := nextStart(d)
			if err != nil {
				return nil, err
			}
			return decodeValue(d, start)
		}
	}
}

func nextStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, errEnd
		}
	}
}

var errEnd = fmt.Errorf("end of container")

func decodeValue(d *xml.Decoder, start xml.StartElement) (any, error) {
	switch start.Name.Local {
	case "string", "integer", "key":
		var s string
		if err := d.DecodeElement(&s, &start); err != nil {
			return nil, err
		}
		if start.Name.Local == "integer" {
			return strconv.Atoi(s)
		}
		return s, nil
	case "true", "false":
		if err := d.Skip(); err != nil {
			return nil, err
		}
		return start.Name.Local == "true", nil
	case "array":
		out := []any{}
		for {
			se, err := nextStart(d)
			if err == errEnd {
				return out, nil
			} else if err != nil {
				return nil, err
			}
			v, err := decodeValue(d, se)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	case "dict":
		out := map[string]any{}
		for {
			ks, err := nextStart(d)
			if err == errEnd {
				return out, nil
			} else if err != nil {
				return nil, err
			}
			if ks.Name.Local != "key" {
				return nil, fmt.Errorf("<%s> where a <key> belongs", ks.Name.Local)
			}
			k, err := decodeValue(d, ks)
			if err != nil {
				return nil, err
			}
			vs, err := nextStart(d)
			if err != nil {
				return nil, fmt.Errorf("key %v without a value: %v", k, err)
			}
			v, err := decodeValue(d, vs)
			if err != nil {
				return nil, err
			}
			if _, dup := out[k.(string)]; dup {
				return nil, fmt.Errorf("duplicate key %v", k)
			}
			out[k.(string)] = v
		}
	}
	return nil, fmt.Errorf("unknown plist element <%s>", start.Name.Local)
}

// plistlib decodes data with Python's plistlib, the closest stand-in for
// Apple's parser on this machine, and returns it through JSON.
func plistlib(t *testing.T, data []byte) any {
	t.Helper()
	py := testtool.Need(t, "python3")
	cmd := exec.Command(py, "-c", "import plistlib, sys, json; json.dump(plistlib.loads(sys.stdin.buffer.read()), sys.stdout)")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("plistlib: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("plistlib: %v", err)
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return normalizeJSON(v)
}

// normalizeJSON turns JSON's float64 numbers into ints, as decodePlist has them.
func normalizeJSON(v any) any {
	switch v := v.(type) {
	case float64:
		return int(v)
	case []any:
		for i := range v {
			v[i] = normalizeJSON(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = normalizeJSON(v[k])
		}
	}
	return v
}

func TestWritePlistRoundTrip(t *testing.T) {
	in := dict{
		{"s", `<&>"' tab	nl
x`},
		{"i", -3},
		{"t", true},
		{"f", false},
		{"a", array{"x", 1, dict{{"k", "v"}}}},
		{"empty", dict{}},
	}
	var b bytes.Buffer
	if err := writePlist(&b, in); err != nil {
		t.Fatal(err)
	}
	got, err := decodePlist(b.Bytes())
	if err != nil {
		t.Fatalf("decodePlist: %v\n%s", err, b.Bytes())
	}
	want := map[string]any{
		"s": "<&>\"' tab\tnl\nx", "i": -3, "t": true, "f": false,
		"a":     []any{"x", 1, map[string]any{"k": "v"}},
		"empty": map[string]any{},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip = %#v, want %#v", got, want)
	}
	if py := plistlib(t, b.Bytes()); !reflect.DeepEqual(py, want) {
		t.Errorf("plistlib = %#v, want %#v", py, want)
	}
	if err := writePlist(&b, dict{{"bad", 1.5}}); err == nil {
		t.Error("writePlist(float) succeeded, want an error")
	}
}
