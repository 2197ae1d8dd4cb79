package dovecot

import (
	"errors"
	"slices"
	"strings"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// An assignment is a setting's value where it was last set.
type assignment struct {
	value string
	pos   hostfs.Pos
	file  string // host path of a "<file" value; value is then "<" + path as written
}

// A scope holds the settings of the top level or of one filter block.
// Blocks with the same filter merge into one scope, as in Dovecot.
type scope struct {
	kind, arg string // "" for the top level
	parent    *scope
	pos       hostfs.Pos // first block
	vals      map[string]assignment
	order     []string // keys in first-set order
}

func (s *scope) set(key string, a assignment) {
	if _, ok := s.vals[key]; !ok {
		s.order = append(s.order, key)
	}
	s.vals[key] = a
}

// A service is the merged service blocks of one name.
type service struct {
	listeners []*listenerBlock
	listen    *assignment // 2.4 "listen" in the service block: its listeners' default
}

// A listenerBlock is the merged inet_listener blocks of one name.
type listenerBlock struct {
	name string
	pos  hostfs.Pos
	vals map[string]assignment
}

type frameKind int

const (
	frameRoot frameKind = iota
	frameFilter
	frameService
	frameListener
	frameBoolList // 2.4 "protocols { imap = yes }"
	frameNamed    // 2.4 named filter whose settings take a prefix
	frameIgnored
)

type frame struct {
	kind   frameKind
	pos    hostfs.Pos
	scope  *scope
	svc    *service
	lis    *listenerBlock
	prefix string // frameNamed: "ssl_server_"; frameBoolList: the list's key
}

// filterKinds are Dovecot's connection filters.
var filterKinds = map[string]bool{"protocol": true, "local": true, "remote": true, "local_name": true}

// boolLists are the 2.4 boolean-list settings this package reads.
var boolLists = map[string]bool{"protocols": true, "auth_mechanisms": true}

// namedFilters maps a 2.4 named filter to the prefix of its settings.
var namedFilters = map[string]string{"ssl_server": "ssl_server_"}

// wanted are the settings whose "<file" contents Load reads: the ones it
// interprets. Other "<file" values (certificates, keys) keep their path.
var wanted = map[string]bool{
	"protocols": true, "listen": true, "ssl": true, "disable_plaintext_auth": true,
	"auth_allow_cleartext": true, "auth_mechanisms": true, "auth_username_format": true,
	"submission_relay_host": true, "submission_relay_port": true,
}

// An evaluator applies logical lines, in include order, to the settings.
type evaluator struct {
	root     *scope
	filters  []*scope
	groups   map[string]*scope // 2.4 "group @name value { }" by "@name value"
	services map[string]*service
	stack    []frame
	version  string // dovecot_config_version as written
	debian   bool
	errs     []error
}

func newEvaluator() *evaluator {
	root := &scope{vals: map[string]assignment{}}
	return &evaluator{
		root:     root,
		groups:   map[string]*scope{},
		services: map[string]*service{},
		stack:    []frame{{kind: frameRoot, scope: root}},
	}
}

func (e *evaluator) top() *frame { return &e.stack[len(e.stack)-1] }

func (e *evaluator) apply(root hostfs.Root, l *Line) {
	switch l.Kind {
	case LineSectionStart:
		e.push(l)
	case LineSectionEnd:
		if len(e.stack) == 1 {
			e.errs = append(e.errs, hostfs.Errorf(l.Pos.File, l.Pos.Line, "unexpected '}'"))
			return
		}
		e.stack = e.stack[:len(e.stack)-1]
	case LineSetting:
		e.setting(root, l)
	}
}

func (e *evaluator) push(l *Line) {
	t := e.top()
	f := frame{kind: frameIgnored, pos: l.Pos}
	arg := strings.Join(l.Args, " ")
	switch {
	case t.kind == frameRoot && l.Key == "group" && len(l.Args) == 2 && strings.HasPrefix(l.Args[0], "@"):
		f.kind, f.scope = frameFilter, e.group(l.Args[0]+" "+l.Args[1], l.Pos)
	case (t.kind == frameRoot || t.kind == frameFilter) && filterKinds[l.Key] && arg != "" && t.scope.kind != "group":
		f.kind, f.scope = frameFilter, e.filter(t.scope, l.Key, arg, l.Pos)
	case t.kind == frameRoot && l.Key == "service" && arg != "":
		svc := e.services[arg]
		if svc == nil {
			svc = &service{}
			e.services[arg] = svc
		}
		f.kind, f.svc = frameService, svc
	case t.kind == frameService && l.Key == "inet_listener":
		f.kind, f.lis = frameListener, e.listener(t.svc, arg, l.Pos)
	case (t.kind == frameRoot || t.kind == frameFilter) && boolLists[l.Key] && arg == "":
		f.kind, f.scope, f.prefix = frameBoolList, t.scope, l.Key
	case (t.kind == frameRoot || t.kind == frameFilter) && namedFilters[l.Key] != "" && arg == "":
		f.kind, f.scope, f.prefix = frameNamed, t.scope, namedFilters[l.Key]
	}
	e.stack = append(e.stack, f)
}

func (e *evaluator) filter(parent *scope, kind, arg string, pos hostfs.Pos) *scope {
	for _, s := range e.filters {
		if s.parent == parent && s.kind == kind && s.arg == arg {
			return s
		}
	}
	s := &scope{kind: kind, arg: arg, parent: parent, pos: pos, vals: map[string]assignment{}}
	e.filters = append(e.filters, s)
	return s
}

// group returns the scope of a settings group, "@name value". Its settings
// apply where "@name = value" includes it, below the settings made there.
func (e *evaluator) group(ref string, pos hostfs.Pos) *scope {
	g := e.groups[ref]
	if g == nil {
		g = &scope{kind: "group", arg: ref, pos: pos, vals: map[string]assignment{}}
		e.groups[ref] = g
	}
	return g
}

func (e *evaluator) listener(svc *service, name string, pos hostfs.Pos) *listenerBlock {
	if name != "" {
		for _, lb := range svc.listeners {
			if lb.name == name {
				return lb
			}
		}
	}
	lb := &listenerBlock{name: name, pos: pos, vals: map[string]assignment{}}
	svc.listeners = append(svc.listeners, lb)
	return lb
}

func (e *evaluator) setting(root hostfs.Root, l *Line) {
	t := e.top()
	switch t.kind {
	case frameRoot, frameFilter:
		if t.kind == frameRoot && l.Key == "dovecot_config_version" {
			e.version = l.Value
		}
		t.scope.set(l.Key, e.value(root, t.scope, l.Key, l))
	case frameNamed:
		key := l.Key
		if !strings.HasPrefix(key, t.prefix) {
			key = t.prefix + key
		}
		t.scope.set(key, e.value(root, t.scope, key, l))
	case frameBoolList:
		e.boolListItem(t, l)
	case frameListener:
		key := strings.TrimPrefix(l.Key, "inet_listener_")
		t.lis.vals[key] = assignment{value: l.Value, pos: l.Pos}
	case frameService:
		if l.Key == "listen" {
			t.svc.listen = &assignment{value: l.Value, pos: l.Pos}
		}
	}
}

// boolListItem applies "name = yes|no" inside a 2.4 boolean-list block.
func (e *evaluator) boolListItem(t *frame, l *Line) {
	on, err := parseBool(l.Value)
	if err != nil {
		e.errs = append(e.errs, hostfs.Errorf(l.Pos.File, l.Pos.Line, "%s { %s }: %v", t.prefix, l.Key, err))
		return
	}
	cur, _, _ := e.lookup(t.scope, t.prefix)
	// An item already on keeps its place, as doveconf lists them.
	var items []string
	found := false
	for _, it := range splitList(cur) {
		if it == l.Key {
			found = true
			if !on {
				continue
			}
		}
		items = append(items, it)
	}
	if on && !found {
		items = append(items, l.Key)
	}
	t.scope.set(t.prefix, assignment{value: strings.Join(items, " "), pos: l.Pos})
}

// value computes the value a setting line assigns, as Dovecot's config
// process does: "<file" read for the settings this package interprets,
// "$key ..." expanded from the earlier value.
func (e *evaluator) value(root hostfs.Root, s *scope, key string, l *Line) assignment {
	a := assignment{value: l.Value, pos: l.Pos}
	switch l.ValueKind {
	case Quoted, HereDoc:
		return a
	case FromFile:
		a.file = hostPath(l.Pos.File, l.Value)
		a.value = "<" + l.Value
		if wanted[key] {
			data, err := root.ReadFile(a.file)
			if err != nil {
				if h := hostfs.PermissionHint(err); h != "" {
					err = errors.Join(err, errors.New(h))
				}
				e.errs = append(e.errs, hostfs.Errorf(l.Pos.File, l.Pos.Line, "%s: %v", key, err))
				return a
			}
			a.value = strings.TrimRight(string(data), " \t\r\n")
			a.file = ""
		}
		return a
	}
	v := l.Value
	// 2.4: a value that refers to its own setting is expanded at once.
	if containsToken(v, "$SET:"+key) {
		a.value = e.expandSET(s, v, key)
		return a
	}
	if !strings.HasPrefix(v, "$") || strings.HasPrefix(v, "$SET:") || strings.HasPrefix(v, "$ENV:") {
		return a // $SET: of other settings is expanded when looked up
	}
	// 2.3: only a leading "$name" is a variable; the rest is literal.
	name, rest, _ := strings.Cut(v[1:], " ")
	if rest != "" || strings.HasSuffix(v, " ") {
		rest = " " + rest
	}
	if val, _, ok := e.lookup(s, name); ok {
		a.value = val + rest
	}
	return a
}

// lookup returns a setting's current value seen from scope s: set there or
// in an enclosing scope, else the built-in default.
func (e *evaluator) lookup(s *scope, key string) (string, hostfs.Pos, bool) {
	for ; s != nil; s = s.parent {
		if a, ok := e.own(s, key); ok {
			return a.value, a.pos, true
		}
	}
	v, ok := defaultValue(e.versionMajorMinor(), e.debian, key)
	return v, hostfs.Pos{}, ok
}

// own returns a setting made in scope s itself: set there, else set by the
// last group s includes that sets it ("@name = value").
func (e *evaluator) own(s *scope, key string) (assignment, bool) {
	if a, ok := s.vals[key]; ok {
		return a, true
	}
	for i := len(s.order) - 1; i >= 0; i-- {
		k := s.order[i]
		if !strings.HasPrefix(k, "@") || s.kind == "group" {
			continue
		}
		if g := e.groups[k+" "+s.vals[k].value]; g != nil {
			if a, ok := g.vals[key]; ok {
				return a, true
			}
		}
	}
	return assignment{}, false
}

// ownKeys returns the settings made in scope s itself, its groups' included,
// in first-set order.
func (e *evaluator) ownKeys(s *scope) []string {
	keys := append([]string(nil), s.order...)
	for _, k := range s.order {
		if !strings.HasPrefix(k, "@") || s.kind == "group" {
			continue
		}
		if g := e.groups[k+" "+s.vals[k].value]; g != nil {
			for _, gk := range g.order {
				if !slices.Contains(keys, gk) {
					keys = append(keys, gk)
				}
			}
		}
	}
	return keys
}

// expandSET replaces every space-separated "$SET:name" token of v.
func (e *evaluator) expandSET(s *scope, v, self string) string {
	if !strings.Contains(v, "$SET:") {
		return v
	}
	fields := strings.Split(v, " ")
	for i, f := range fields {
		name, ok := strings.CutPrefix(f, "$SET:")
		if !ok || name == "" {
			continue
		}
		if val, _, ok := e.lookup(s, name); ok {
			if name != self {
				val = e.expandSETDepth(s, val, 8)
			}
			fields[i] = val
		}
	}
	return strings.Join(fields, " ")
}

func (e *evaluator) expandSETDepth(s *scope, v string, depth int) string {
	if depth == 0 || !strings.Contains(v, "$SET:") {
		return v
	}
	fields := strings.Split(v, " ")
	for i, f := range fields {
		if name, ok := strings.CutPrefix(f, "$SET:"); ok && name != "" {
			if val, _, ok := e.lookup(s, name); ok {
				fields[i] = e.expandSETDepth(s, val, depth-1)
			}
		}
	}
	return strings.Join(fields, " ")
}

func containsToken(v, tok string) bool {
	for _, f := range strings.Fields(v) {
		if f == tok {
			return true
		}
	}
	return false
}

// finish reports sections left open at the end of the include tree.
func (e *evaluator) finish() {
	for _, f := range e.stack[1:] {
		e.errs = append(e.errs, &hostfs.PosError{Pos: f.pos, Err: errors.New("missing '}'")})
	}
	e.stack = e.stack[:1]
}

func (e *evaluator) versionMajorMinor() string {
	if e.version == "" {
		return "2.3"
	}
	parts := strings.SplitN(strings.TrimSpace(e.version), ".", 3)
	if len(parts) >= 2 {
		return parts[0] + "." + parts[1]
	}
	return parts[0]
}
