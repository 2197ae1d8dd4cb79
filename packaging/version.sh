#!/bin/sh
# version.sh prints the package version for the checked-out commit, valid for
# both dpkg and rpm:
#   on a tag v1.2.3                 1.2.3 (v1.2.3-rc1: 1.2.3~rc1)
#   after a tag (v1.2.3-4-gabcdef0) 1.2.3+git20261123.abcdef0
#   without any tag                 0.0.0~git20261123.abcdef0
# The date is the commit's (UTC), so the same commit gives the same version.
# Outside a git checkout it prints 0.0.0~unknown.
set -eu

if ! sha=$(git rev-parse --short=7 HEAD 2>/dev/null); then
	echo 0.0.0~unknown
	exit 0
fi
date=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d HEAD)
if desc=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
	case $desc in
	*-*-g*)
		base=${desc%-*-g*}
		echo "${base#v}+git$date.$sha" | tr - '~'
		;;
	*)
		echo "${desc#v}" | tr - '~'
		;;
	esac
else
	echo "0.0.0~git$date.$sha"
fi
