#!/usr/bin/env bash
# git-pushmirror installer.
#
#   ./install.sh [--prefix DIR] [--binary FILE] [--systemd [--systemd-dir DIR] [--user USER]]
#                [--chain] [--hooks-dir DIR ...] [REPO.git ...]
#       Build the static release binary (or take FILE), install it as DIR/bin/git-pushmirror
#       (default /usr/local) with its man pages (DIR/share/man/man1: `git pushmirror --help`)
#       and bash/zsh/fish completions, and install the post-receive hook into each bare
#       repository given. --systemd also installs the sweep and metrics services and timers
#       (docs/systemd/) into /etc/systemd/system (or --systemd-dir), the sweep running as USER
#       (default git); enable them with systemctl (printed). See docs/operations.md.
#       --chain keeps an existing foreign post-receive hook (it runs first, same input).
#       --hooks-dir installs into a hooks directory shared by many repositories (Gitolite:
#       ~/.gitolite/hooks/common, then `gitolite setup --hooks-only`). Same as
#       `git-pushmirror install [--chain] [--hooks-dir DIR]`, which does the work.
#   ./install.sh --demo
#       Build, then in a throw-away directory: make an upstream and a mirror, install the hook,
#       push, show the mirror updated and `status`. Touches nothing outside that directory.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
prefix=/usr/local
chain=()
demo=0
repos=()
hook_dirs=()
binary=
systemd=0
systemd_dir=/etc/systemd/system
unit_user=git
while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
	--prefix=*) prefix=${1#--prefix=}; shift ;;
	--chain) chain=(--chain); shift ;;
	--hooks-dir) hook_dirs+=("${2:?--hooks-dir needs a directory}"); shift 2 ;;
	--hooks-dir=*) hook_dirs+=("${1#--hooks-dir=}"); shift ;;
	--demo) demo=1; shift ;;
	--binary) binary=${2:?--binary needs a file}; shift 2 ;;
	--binary=*) binary=${1#--binary=}; shift ;;
	--systemd) systemd=1; shift ;;
	--systemd-dir) systemd_dir=${2:?--systemd-dir needs a directory}; shift 2 ;;
	--systemd-dir=*) systemd_dir=${1#--systemd-dir=}; shift ;;
	--user) unit_user=${2:?--user needs a user name}; shift 2 ;;
	--user=*) unit_user=${1#--user=}; shift ;;
	-h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	*) repos+=("$1"); shift ;;
	esac
done

[ -n "$binary" ] || command -v cargo >/dev/null || { echo "install.sh: cargo not found: install the Rust toolchain first" >&2; exit 1; }
command -v git >/dev/null || { echo "install.sh: git not found: apt-get install git" >&2; exit 1; }

# Static: glibc statically linked (static-pie). The explicit --target keeps proc-macros building
# for the host.
target=x86_64-unknown-linux-gnu
if [ -n "$binary" ]; then
	[ -x "$binary" ] || { echo "install.sh: --binary $binary: not an executable file" >&2; exit 1; }
	built=$binary
else
	echo "building git-pushmirror (release, static)..." >&2
	(cd "$here" && RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --quiet --target "$target")
	built="$here/target/$target/release/git-pushmirror"
fi

if [ "$demo" = 1 ]; then
	work=$(mktemp -d "${TMPDIR:-/tmp}/git-pushmirror-demo.XXXXXX")
	export GIT_PUSHMIRROR_CONFIG="$work/server.yaml" GIT_PUSHMIRROR_RUNTIME_DIR="$work/run"
	export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
	export GIT_AUTHOR_NAME=Demo GIT_AUTHOR_EMAIL=demo@example.com GIT_COMMITTER_NAME=Demo GIT_COMMITTER_EMAIL=demo@example.com
	: > "$GIT_PUSHMIRROR_CONFIG"
	cp "$built" "$work/git-pushmirror"
	pm="$work/git-pushmirror"
	cd "$work"
	git init -q --bare -b main upstream.git
	git init -q --bare -b main mirror.git
	echo "== install the hook and add a mirror"
	"$pm" --repo upstream.git install
	"$pm" --repo upstream.git add backup "$work/mirror.git" --debounce 200ms
	git clone -q upstream.git work 2>/dev/null
	cd work
	git checkout -q -b main
	echo "hello" > README && git add README && git commit -q -m "first commit"
	git tag -a -m "first release" v1.0
	git checkout -q -b feature && git commit -q --allow-empty -m "feature work" && git checkout -q main
	echo "== git push (returns at once; the flusher mirrors in the background)"
	start=$(date +%s%N)
	git push -q origin main feature v1.0
	end=$(date +%s%N)
	echo "push took $(( (end - start) / 1000000 )) ms"
	cd "$work"
	for _ in $(seq 1 100); do
		[ "$(git --git-dir=mirror.git for-each-ref | wc -l)" -ge 3 ] && break
		sleep 0.1
	done
	echo "== upstream refs"
	git --git-dir=upstream.git for-each-ref --format='%(objectname:short) %(refname)'
	echo "== mirror refs"
	git --git-dir=mirror.git for-each-ref --format='%(objectname:short) %(refname)'
	if [ "$(git --git-dir=upstream.git for-each-ref)" != "$(git --git-dir=mirror.git for-each-ref)" ]; then
		echo "install.sh: demo FAILED: the mirror does not match upstream; log:" >&2
		cat upstream.git/pushmirror/log >&2
		exit 1
	fi
	for _ in $(seq 1 100); do "$pm" --repo upstream.git status >/dev/null 2>&1 && ! grep -q '"started"\|"scheduled"' upstream.git/pushmirror/state/*.json && break; sleep 0.1; done
	echo "== git-pushmirror status"
	"$pm" --repo upstream.git status
	echo "== demo OK: the mirror matches upstream (files in $work)"
	exit 0
fi

install -d "$prefix/bin"
# Replace by rename so a running flusher keeps its (old) binary and hooks never see a half copy.
install -m 0755 "$built" "$prefix/bin/.git-pushmirror.new"
mv -f "$prefix/bin/.git-pushmirror.new" "$prefix/bin/git-pushmirror"
echo "installed $prefix/bin/git-pushmirror"
# Man pages and completions are generated from the CLI definitions and checked in (a unit test
# keeps them in sync), so installing them needs no build step.
install -d "$prefix/share/man/man1"
install -m 0644 "$here"/docs/man/*.1 "$prefix/share/man/man1/"
install -D -m 0644 "$here/docs/completions/git-pushmirror.bash" "$prefix/share/bash-completion/completions/git-pushmirror"
install -D -m 0644 "$here/docs/completions/_git-pushmirror" "$prefix/share/zsh/site-functions/_git-pushmirror"
install -D -m 0644 "$here/docs/completions/git-pushmirror.fish" "$prefix/share/fish/vendor_completions.d/git-pushmirror.fish"
echo "installed man pages (man git-pushmirror) and completions under $prefix/share"
if [ "$systemd" = 1 ]; then
	install -d "$systemd_dir"
	group=$(id -gn "$unit_user" 2>/dev/null || echo "$unit_user")
	for f in "$here"/docs/systemd/*.service "$here"/docs/systemd/*.timer; do
		sed -e "s#/usr/local/bin/git-pushmirror#$prefix/bin/git-pushmirror#" \
			-e "s#^User=git\$#User=$unit_user#" -e "s#^Group=git\$#Group=$group#" "$f" >"$systemd_dir/.$(basename "$f").new"
		chmod 0644 "$systemd_dir/.$(basename "$f").new"
		mv -f "$systemd_dir/.$(basename "$f").new" "$systemd_dir/$(basename "$f")"
	done
	echo "installed systemd units in $systemd_dir (sweep runs as $unit_user; both need root: in the server config)"
	if [ "$systemd_dir" = /etc/systemd/system ] && [ -d /run/systemd/system ]; then
		systemctl daemon-reload
	fi
	echo "enable them with: systemctl enable --now git-pushmirror-sweep.timer git-pushmirror-metrics.timer"
fi
for r in "${repos[@]}"; do
	"$prefix/bin/git-pushmirror" --repo "$r" install "${chain[@]}"
done
for d in "${hook_dirs[@]}"; do
	"$prefix/bin/git-pushmirror" install "${chain[@]}" --hooks-dir "$d"
done
