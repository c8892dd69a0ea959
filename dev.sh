#!/usr/bin/env bash
# PickEdge set-up in one command, on a fresh Debian machine (root, or a user with sudo):
#   ./dev.sh demo    install what is missing, then run `pickedge demo` (everything simulated)
#   ./dev.sh test    install what is missing, then ruff, mypy and the whole test suite
#   ./dev.sh bench   install the benchmark extras, then run every script in bench/ (quick)
# Each creates .venv/ beside this file and installs into it; Debian packages
# (python3-venv, mosquitto, chromium, faketime, systemd, postgresql, fuse3) are installed only when missing.
set -euo pipefail
cd "$(dirname "$0")"
what="${1:-}"
shift || true

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_install() {  # apt_install PACKAGE...: Debian packages, as root or through sudo
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            say "missing Debian packages: $*; install them as root: apt-get install -y $*"
            exit 1
        fi
    fi
    say "installing Debian packages: $*"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need_python() {
    local py
    py="$(command -v python3 || true)"
    if [ -z "$py" ] || ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        apt_install python3 python3-venv
    fi
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        apt_install python3-venv
    fi
}

need_mosquitto() {
    command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || apt_install mosquitto
}

need_faketime() {  # the clock tests run the daemon under libfaketime
    command -v faketime >/dev/null || apt_install faketime
}

need_systemd_analyze() {  # the unit test runs `systemd-analyze verify` on configs/pickedge.service
    command -v systemd-analyze >/dev/null || apt_install systemd
}

need_postgresql() {  # tests/cloud start throwaway PostgreSQL clusters (and use $PICKEDGE_TEST_PG's server when set)
    command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
}

need_fuse() {  # tests/durability mount the power-cut filesystem through libfuse3
    { [ -e /usr/lib/x86_64-linux-gnu/libfuse3.so.3 ] || ldconfig -p 2>/dev/null | grep -q libfuse3.so; } \
        && command -v fusermount3 >/dev/null || apt_install fuse3 libfuse3-3
}

need_chromium() {
    command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || apt_install chromium
}

venv() {  # venv [EXTRAS]: .venv with the package (and extras), reinstalled when pyproject changes
    local extras="${1:-}" stamp=".venv/.installed-${1:-base}" spec="."
    [ -z "$extras" ] || spec=".[$extras]"
    need_python
    [ -x .venv/bin/python ] || { say "creating .venv"; python3 -m venv .venv; }
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        say "installing pickedge${extras:+[$extras]} into .venv"
        .venv/bin/python -m pip install -q --upgrade pip >/dev/null
        .venv/bin/python -m pip install -q -e "$spec"
        touch "$stamp"
    fi
}

case "$what" in
    demo)
        need_mosquitto
        venv
        exec .venv/bin/pickedge demo "$@"
        ;;
    test)
        need_mosquitto
        need_chromium
        need_faketime
        need_systemd_analyze
        need_postgresql
        need_fuse
        venv test
        say "ruff"
        .venv/bin/ruff check .
        .venv/bin/ruff format --check .
        say "mypy (strict on edge/, cloud_sync/, devices/)"
        .venv/bin/mypy
        say "pytest"
        exec .venv/bin/python -m pytest "$@"
        ;;
    bench)
        need_mosquitto
        need_postgresql
        need_fuse
        venv test,bench
        for script in bench/*.py; do
            case "$script" in */_*) continue ;; esac
            say "$script --quick"
            .venv/bin/python "$script" --quick
        done
        ;;
    *)
        sed -n '2,6p' "$0" >&2
        exit 2
        ;;
esac
