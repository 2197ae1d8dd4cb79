package keystage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/mailautoconf/mailautoconf/sources/hostfs"
)

// An Account is a user as the host's /etc/passwd and /etc/group describe
// it, with the names of the host's users and groups for messages.
type Account struct {
	Name   string
	UID    int
	GIDs   []int // primary group first, then the supplementary groups
	users  map[int]string
	groups map[int]string
}

// ErrNoAccount is returned by LookupAccount for a user the host lacks.
var ErrNoAccount = errors.New("no such user")

// LookupAccount reads the user name and its groups from the host's
// /etc/passwd and /etc/group (under root, as every host file is).
func LookupAccount(root hostfs.Root, name string) (*Account, error) {
	a := &Account{Name: name, UID: -1, users: map[int]string{}, groups: map[int]string{}}
	err := eachLine(root, "/etc/passwd", func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return
		}
		if _, dup := a.users[uid]; !dup {
			a.users[uid] = f[0]
		}
		if f[0] == name && a.UID < 0 {
			a.UID, a.GIDs = uid, []int{gid}
		}
	})
	if err != nil {
		return nil, err
	}
	if a.UID < 0 {
		return nil, fmt.Errorf("user %s: %w in /etc/passwd", name, ErrNoAccount)
	}
	err = eachLine(root, "/etc/group", func(f []string) {
		if len(f) < 4 {
			return
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			return
		}
		if _, dup := a.groups[gid]; !dup {
			a.groups[gid] = f[0]
		}
		if slices.Contains(strings.Split(f[3], ","), name) && !slices.Contains(a.GIDs, gid) {
			a.GIDs = append(a.GIDs, gid)
		}
	})
	if err != nil && !isNotExist(err) {
		return nil, err
	}
	return a, nil
}

// eachLine calls fn with the colon-separated fields of each line of the
// host file p.
func eachLine(root hostfs.Root, p string, fn func([]string)) error {
	data, err := root.ReadFile(p)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	return sc.Err()
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// GroupNames returns the names of the account's groups, for messages.
func (a *Account) GroupNames() []string {
	var names []string
	for _, g := range a.GIDs {
		names = append(names, a.groupName(uint32(g)))
	}
	return names
}

func (a *Account) userName(uid uint32) string {
	if n, ok := a.users[int(uid)]; ok {
		return n
	}
	return strconv.FormatUint(uint64(uid), 10)
}

func (a *Account) groupName(gid uint32) string {
	if n, ok := a.groups[int(gid)]; ok {
		return n
	}
	return strconv.FormatUint(uint64(gid), 10)
}

// may reports whether the account has the permission bits perm (4 read,
// 1 search) on a file with the FileInfo fi, as the kernel decides without
// ACLs: the owner's bits for the owner, the group's for a member, the
// others' for everyone else; root may do anything but execute.
func (a *Account) may(fi fs.FileInfo, perm fs.FileMode) bool {
	if a.UID == 0 {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	mode := fi.Mode().Perm()
	switch {
	case int(st.Uid) == a.UID:
		mode >>= 6
	case slices.Contains(a.GIDs, int(st.Gid)):
		mode >>= 3
	}
	return mode&perm == perm
}

// describe says who owns a file and its mode: "mode 0700 root:root".
func (a *Account) describe(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprintf("mode %04o", fi.Mode().Perm())
	}
	return fmt.Sprintf("mode %04o %s:%s", fi.Mode().Perm(), a.userName(st.Uid), a.groupName(st.Gid))
}

// CanRead reports whether the account can read the host file p: search
// permission on every directory on the way, symbolic links followed as
// the kernel follows them (hostfs.Root.Walk, the walk every read of a
// host file takes), then read permission on the file. When it cannot, why
// names the file or directory that stops it and its mode and owner. POSIX
// ACLs are not read: where they grant access, CanRead answers no. err is
// set when p cannot be examined at all (it does not exist, even for root).
func CanRead(root hostfs.Root, p string, a *Account) (ok bool, why string, err error) {
	denied := func(hp string, fi fs.FileInfo, what string) string {
		return fmt.Sprintf("%s is %s: %s (groups %s) cannot %s", hp, a.describe(fi), a.Name, strings.Join(a.GroupNames(), ", "), what)
	}
	errDenied := errors.New("denied")
	resolved, err := root.Walk(p, func(dir string, fi fs.FileInfo) error {
		if !a.may(fi, 1) {
			why = denied(dir, fi, "enter it")
			return errDenied
		}
		return nil
	})
	switch {
	case err == errDenied:
		return false, why, nil
	case err != nil:
		return false, "", err
	}
	fi, err := root.Stat(resolved)
	if err != nil {
		return false, "", err
	}
	if !a.may(fi, 4) {
		name := p
		if resolved != path.Clean(p) {
			name = p + " (" + resolved + ")"
		}
		return false, denied(name, fi, "read it"), nil
	}
	return true, "", nil
}
