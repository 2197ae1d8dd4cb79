package serve

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// decodePOXRequestStd is the decoder decodePOXRequest replaced, built on
// encoding/xml's strict tokenizer: the reference FuzzDecodePOXRequest
// compares it with. It reads an Autodiscover request body:
// Autodiscover/Request/{EMailAddress, AcceptableResponseSchema}. Elements
// are matched by local name without regard to case or namespace, as clients
// differ (PROTOCOLS.md §3.2). A byte-order mark is skipped. Non-UTF-8
// bodies, a DOCTYPE or any other <!...> declaration, and undefined
// entities are refused.
func decodePOXRequestStd(body []byte) (poxRequest, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(body) {
		return poxRequest{}, errNotUTF8
	}
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	dec.CharsetReader = func(charset string, r io.Reader) (io.Reader, error) {
		// The body was checked to be UTF-8; ASCII is a subset of it.
		if strings.EqualFold(charset, "us-ascii") || strings.EqualFold(charset, "ascii") || strings.EqualFold(charset, "utf8") {
			return r, nil
		}
		return nil, fmt.Errorf("encoding %q is not supported; send UTF-8", charset)
	}

	var (
		req      poxRequest
		path     [maxPOXDepth]string // local names of the open elements
		depth    int
		rootNS   string
		text     []byte
		sawRoot  bool
		gotEmail bool
		gotSch   bool
	)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return poxRequest{}, fmt.Errorf("the request body is not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return poxRequest{}, errors.New("the request body has a DOCTYPE or other declaration, which is not accepted")
		case xml.StartElement:
			if depth == 0 {
				if sawRoot {
					return poxRequest{}, errors.New("the request body has more than one root element")
				}
				sawRoot = true
				if !strings.EqualFold(t.Name.Local, "Autodiscover") {
					return poxRequest{}, fmt.Errorf("the root element is not Autodiscover")
				}
				rootNS = t.Name.Space
			}
			if depth == maxPOXDepth {
				return poxRequest{}, errors.New("the request body is nested too deeply")
			}
			path[depth] = t.Name.Local
			depth++
			text = text[:0]
		case xml.CharData:
			switch {
			case depth == 3:
				text = append(text, t...)
			case depth == 0 && len(bytes.TrimSpace(t)) > 0:
				return poxRequest{}, errors.New("the request body has text outside the Autodiscover element")
			}
		case xml.EndElement:
			depth--
			if depth == 2 && strings.EqualFold(path[1], "Request") {
				v := strings.TrimSpace(string(text))
				switch {
				case !gotEmail && strings.EqualFold(path[2], "EMailAddress"):
					req.EMailAddress, gotEmail = v, true
				case !gotSch && strings.EqualFold(path[2], "AcceptableResponseSchema"):
					req.Schema, gotSch = v, true
				}
			}
		}
	}
	if !sawRoot {
		return poxRequest{}, errors.New("the request body is empty")
	}
	if req.Schema == "" {
		req.Schema = schemaOutlook
		if rootNS == nsMobileSyncReq {
			req.Schema = schemaMobileSync
		}
	}
	return req, nil
}

// laxerStd reports whether body uses something encoding/xml lets through
// but decodePOXRequest deliberately refuses: control characters, U+FFFE
// or U+FFFF, which XML does not allow anywhere; a name (element,
// attribute, processing instruction target) with a non-ASCII character;
// an XML declaration anywhere but at the start.
func laxerStd(body []byte) bool {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	if checkXMLChars(body) != nil {
		return true
	}
	nonASCII := func(s string) bool { return strings.IndexFunc(s, func(r rune) bool { return r >= utf8.RuneSelf }) >= 0 }
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	for {
		offset := dec.InputOffset()
		tok, err := dec.RawToken()
		if err != nil {
			return false
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if nonASCII(tok.Name.Space + tok.Name.Local) {
				return true
			}
			for _, a := range tok.Attr {
				if nonASCII(a.Name.Space + a.Name.Local) {
					return true
				}
			}
		case xml.EndElement:
			if nonASCII(tok.Name.Space + tok.Name.Local) {
				return true
			}
		case xml.ProcInst:
			if nonASCII(tok.Target) || tok.Target == "xml" && offset > 0 {
				return true
			}
		}
	}
}
