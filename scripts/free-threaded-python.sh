#!/usr/bin/env bash
# Build (or reuse) a free-threaded CPython 3.13 ("python3.13t", configured with --disable-gil)
# from Debian's own source package, and print the interpreter's path as the last line on stdout.
#
# Usage: python=$(scripts/free-threaded-python.sh) && "$python" -m venv .venv/free-threaded
#
# The source comes from Debian 13 (trixie) through a private apt sources list and a private
# apt state/cache directory: the system's apt configuration is never read for sources nor
# written. Nothing but Debian's archive is contacted.
#
# Environment:
#   GOCONC_FT_PREFIX   install prefix and cache (default: $XDG_CACHE_HOME or ~/.cache,
#                      then goconc/python3.13t); an existing working build there is reused.
#   GOCONC_FT_MIRROR   Debian mirror (default: http://deb.debian.org/debian)
#   GOCONC_FT_SUITE    Debian suite carrying python3.13 (default: trixie)
#   GOCONC_FT_JOBS     make -j value (default: 2)
#   GOCONC_FT_REBUILD  set to 1 to ignore an existing build
#
# Build dependencies (Debian package names): build-essential pkg-config libssl-dev zlib1g-dev
# libffi-dev libbz2-dev liblzma-dev libsqlite3-dev libreadline-dev libncurses-dev uuid-dev
# libgdbm-dev tk-dev libexpat1-dev xz-utils ca-certificates.
#
# All progress messages go to stderr; stdout carries only the interpreter path.
set -euo pipefail

prefix="${GOCONC_FT_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/goconc/python3.13t}"
mirror="${GOCONC_FT_MIRROR:-http://deb.debian.org/debian}"
suite="${GOCONC_FT_SUITE:-trixie}"
jobs="${GOCONC_FT_JOBS:-2}"
python="$prefix/bin/python3.13t"
stamp="$prefix/.goconc-ft-complete"

log() { printf 'free-threaded-python: %s\n' "$*" >&2; }
step() {
    # step "what" command...: run a step, and name it clearly if it fails.
    local what="$1"
    shift
    log "$what"
    if ! "$@" >&2; then
        log "FAILED: $what (command: $*)"
        exit 1
    fi
}

# An existing build is reused when it was completed and its interpreter really runs without
# the GIL.
gil_is_off() {
    [[ -x "$python" ]] &&
        [[ "$("$python" -c 'import sys; print(sys._is_gil_enabled())' 2>/dev/null)" == "False" ]]
}

if [[ "${GOCONC_FT_REBUILD:-0}" != "1" && -f "$stamp" ]] && gil_is_off; then
    log "reusing $python"
    printf '%s\n' "$python"
    exit 0
fi

# A directory that holds something else than a build of this script is never deleted.
building="$prefix/.goconc-ft-building"
if [[ -d "$prefix" && -n "$(ls -A "$prefix")" && ! -e "$stamp" && ! -e "$building" ]]; then
    log "FAILED: $prefix is not empty and was not made by this script;" \
        "remove it or set GOCONC_FT_PREFIX to another directory"
    exit 1
fi

for tool in apt-get tar make cc; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "FAILED: required tool '$tool' is not installed (install build-essential, xz-utils)"
        exit 1
    fi
done

work="$(mktemp -d "${TMPDIR:-/tmp}/goconc-ft-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Private apt: its own sources list, state, cache and lists; the system's keyring verifies
# the archive. APT::Sandbox::User=root lets apt write into this private directory as root.
mkdir -p "$work/apt/etc/sources.list.d" "$work/apt/etc/preferences.d" \
    "$work/apt/state/lists/partial" "$work/apt/cache/archives/partial"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
printf 'deb-src [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$suite" \
    >"$work/apt/etc/sources.list"
apt_opts=(
    -o "Dir::Etc::SourceList=$work/apt/etc/sources.list"
    -o "Dir::Etc::SourceParts=$work/apt/etc/sources.list.d"
    -o "Dir::Etc::Preferences=$work/apt/etc/preferences"
    -o "Dir::Etc::PreferencesParts=$work/apt/etc/preferences.d"
    -o "Dir::State=$work/apt/state"
    -o "Dir::State::Lists=$work/apt/state/lists"
    -o "Dir::State::status=/var/lib/dpkg/status"
    -o "Dir::Cache=$work/apt/cache"
    -o "APT::Sandbox::User=root"
    -o "Debug::NoLocking=1"
)

step "fetching the $suite source index from $mirror (private apt state in $work/apt)" \
    apt-get "${apt_opts[@]}" -q update
mkdir -p "$work/src"
(
    cd "$work/src"
    step "downloading the python3.13 source package" \
        apt-get "${apt_opts[@]}" -q source --download-only python3.13
)

shopt -s nullglob
tarballs=("$work"/src/python3.13_*.orig.tar.{xz,gz,bz2})
shopt -u nullglob
if [[ ${#tarballs[@]} -ne 1 ]]; then
    log "FAILED: expected one python3.13_*.orig.tar.* in the source package, found ${#tarballs[@]}"
    exit 1
fi
step "unpacking $(basename "${tarballs[0]}")" tar -xf "${tarballs[0]}" -C "$work/src"
srcdir="$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'Python-3.13*' | head -n 1)"
if [[ -z "$srcdir" || ! -x "$srcdir/configure" ]]; then
    log "FAILED: no Python-3.13* source tree with a configure script in the upstream tarball"
    exit 1
fi

rm -rf "$prefix"
mkdir -p "$prefix"
touch "$building"
cd "$srcdir"
# Each step keeps its full output in a log and shows its tail when it fails.
run_logged() {
    local logfile="$1"
    shift
    if ! "$@" >"$logfile" 2>&1; then
        tail -n 60 "$logfile" >&2
        return 1
    fi
}
step "configuring (--disable-gil --prefix=$prefix)" run_logged "$work/configure.log" \
    ./configure --disable-gil --prefix="$prefix" --with-ensurepip=install
step "compiling with make -j$jobs (a few minutes)" run_logged "$work/make.log" make -j"$jobs"
step "installing into $prefix" run_logged "$work/install.log" make install

if ! gil_is_off; then
    log "FAILED: $python does not run with the GIL disabled"
    exit 1
fi
for module in ssl zlib ctypes sqlite3 bz2 lzma venv ensurepip; do
    if ! "$python" -c "import $module" 2>/dev/null; then
        log "FAILED: the build lacks the '$module' module (a -dev package is missing; see above)"
        exit 1
    fi
done
rm -f "$building"
touch "$stamp"
log "built $python"
printf '%s\n' "$python"
