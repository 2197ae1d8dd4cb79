package render

import (
	"encoding/json"
	"fmt"
)

// AutodiscoverJSON renders the Autodiscover v2 answer for
// Protocol=AutodiscoverV1 (PROTOCOLS.md §5): the POX URL on
// autodiscover.<FieldDomain>, spelled as Exchange does.
func AutodiscoverJSON() *Template {
	b, err := json.Marshal(struct {
		Protocol string
		URL      string `json:"Url"`
	}{"AutodiscoverV1", "https://autodiscover." + Marker(FieldDomain) + "/Autodiscover/Autodiscover.xml"})
	if err != nil {
		panic(fmt.Sprintf("render: encode autodiscover.json: %v", err))
	}
	return Compile(ContentTypeJSON, SyntaxJSON, b)
}

// maxProtocolEcho bounds how much of a client's Protocol value the error
// echoes.
const maxProtocolEcho = 64

// AutodiscoverJSONError returns the Autodiscover v2 error for any protocol
// but AutodiscoverV1 (PROTOCOLS.md §5), served with HTTP 400. It echoes the
// protocol's ASCII letters and digits only, at most 64 of them, as mailcow
// does; nothing else of the request reaches the document.
func AutodiscoverJSONError(protocol string) []byte {
	clean := make([]byte, 0, min(len(protocol), maxProtocolEcho))
	for i := 0; i < len(protocol) && len(clean) < maxProtocolEcho; i++ {
		if c := protocol[i]; 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			clean = append(clean, c)
		}
	}
	b, err := json.Marshal(struct {
		ErrorCode    string
		ErrorMessage string
	}{"InvalidProtocol", "The given protocol value '" + string(clean) + "' is invalid. Supported values are 'AutodiscoverV1'"})
	if err != nil {
		panic(fmt.Sprintf("render: encode autodiscover.json error: %v", err))
	}
	return b
}
