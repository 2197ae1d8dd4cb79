package serve

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"

	"github.com/mailautoconf/mailautoconf/render"
)

// errorPage is the HTML answer when the settings page cannot be shown.
var errorPage = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; color: #1f2328; }
h1 { font-size: 1.4rem; }
a { color: #0969da; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
<p><a href="/">Try another address</a></p>
</body>
</html>
`))

// writeErrorPage writes an HTML error page; html/template escapes the
// message.
func writeErrorPage(w http.ResponseWriter, status int, title, message string) {
	var b bytes.Buffer
	if err := errorPage.Execute(&b, struct{ Title, Message string }{title, message}); err != nil {
		writeText(w, status, message) // cannot happen: the template is fixed
		return
	}
	writeBytes(w, status, []string{render.ContentTypeHTML}, cacheNone, b.Bytes())
}

// writeJSONError writes an autodiscover.json error object in the form of
// the InvalidProtocol answer (PROTOCOLS.md §5).
func writeJSONError(w http.ResponseWriter, status int, code, message string) {
	b, err := json.Marshal(struct {
		ErrorCode    string
		ErrorMessage string
	}{code, message})
	if err != nil {
		writeText(w, status, message)
		return
	}
	writeBytes(w, status, []string{render.ContentTypeJSON}, cacheNone, b)
}
