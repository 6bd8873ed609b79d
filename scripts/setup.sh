#!/usr/bin/env bash
# One idempotent set-up step for a fresh Debian machine (run as root): system packages, kernel
# headers for bcc, the virtualenv, the package in development mode, the compiled packet module and
# Debian's bcc made importable inside the venv. Says what it did; skips what is already done;
# stops with a clear message when a step cannot be done.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PYTHON=${PYTHON:-python3}

say()  { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

# Debian packages: what the speaker, the lab and the tests run for real.
APT_PACKAGES=(
  python3-bpfcc     # bcc: compiles and loads the XDP program
  linux-headers-amd64  # kernel headers bcc needs (this kernel ships none, see ENV.md)
  clang llvm        # bcc's backend, and for compiling bpf/ offline
  libbpf1 bpftool   # BPF_PROG_TEST_RUN via libbpf, map inspection
  keepalived        # VIP mode
  iproute2          # namespaces, veth, bridges
  tcpdump           # captures in tests and benchmarks
  iputils-arping iputils-ping ndisc6  # real ARP/NDP/ICMP clients in tests
  procps psmisc     # pgrep/pkill/fuser used by cleanup
  python3-venv
)

# --- 1. root and apt -----------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || fail "must run as root (installs Debian packages, links kernel headers); try: sudo make setup"
command -v dpkg-query >/dev/null || fail "dpkg-query not found: this set-up expects Debian (apt)"

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || fail "apt-get not found, cannot install: ${missing[*]}"
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || fail "apt-get update failed (no network to the package registry?)"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install failed for: ${missing[*]}"
else
  say "Debian packages already installed"
fi

# --- 2. kernel headers for bcc -------------------------------------------------------------------
KREL=$(uname -r)
KDIR=/lib/modules/$KREL
if [ -e "$KDIR/build/include" ]; then
  say "kernel headers present at $KDIR/build"
else
  arch_hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1 || true)
  common_hdr=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$arch_hdr" ] && [ -n "$common_hdr" ] \
    || fail "no /usr/src/linux-headers-*-amd64 and -common; is linux-headers-amd64 installed?"
  mkdir -p "$KDIR"
  ln -sfn "$arch_hdr" "$KDIR/build"
  ln -sfn "$common_hdr" "$KDIR/source"
  say "linked kernel headers for bcc: $KDIR/build -> $arch_hdr, $KDIR/source -> $common_hdr"
fi

# --- 3. virtualenv -------------------------------------------------------------------------------
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || fail "$PYTHON is older than 3.11; set PYTHON=/path/to/python3.11"
if [ -x "$VENV/bin/python" ]; then
  say "virtualenv present at .venv"
else
  "$PYTHON" -m venv "$VENV" || fail "could not create .venv with $PYTHON"
  say "created virtualenv .venv ($("$VENV/bin/python" --version))"
fi

# --- 4. the package, in development mode, with its test tools ------------------------------------
stamp="$VENV/.openelb-installed"
want=$(cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "openelb already installed in .venv (pyproject.toml/setup.py unchanged)"
else
  say "installing openelb in development mode with test tools (pip)"
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel \
    || fail "pip could not upgrade itself (no access to PyPI?)"
  "$VENV/bin/python" -m pip install -q -e ".[test]" || fail "pip install -e .[test] failed"
  echo "$want" > "$stamp"
  say "installed openelb and test tools"
fi

# --- 5. the compiled modules (packet builders, heartbeat pacer) ---------------------------------
# Rebuilt when any module is missing or any file under ext/ is newer than the oldest built module.
sos=$(ls openelb/dataplane/_packet*.so openelb/speaker/_heartbeat*.so 2>/dev/null || true)
oldest=$(ls -tr $sos 2>/dev/null | head -n 1 || true)
if [ -n "${OPENELB_NO_EXTENSIONS:-}" ] && [ "${OPENELB_NO_EXTENSIONS}" != 0 ]; then
  say "OPENELB_NO_EXTENSIONS set: not building the compiled modules"
elif [ "$(echo "$sos" | grep -c '\.so$')" -ge 2 ] && [ -z "$(find ext setup.py -newer "$oldest" -type f)" ]; then
  say "compiled modules up to date"
else
  say "building the compiled modules (Cython)"
  mkdir -p build
  "$VENV/bin/python" setup.py -q build_ext --inplace --force >/dev/null 2>build/setup-build-ext.log \
    || fail "building the extensions failed; see build/setup-build-ext.log"
  ls openelb/dataplane/_packet*.so >/dev/null 2>&1 \
    || fail "Cython build produced no packet module; see build/setup-build-ext.log"
  say "built $(ls openelb/dataplane/_packet*.so openelb/speaker/_heartbeat*.so 2>/dev/null | xargs)"
fi

# --- 6. Debian's bcc inside the venv -------------------------------------------------------------
# bcc is not on PyPI; its Python package is pure Python over libbcc.so. A .pth file adds a folder
# that holds only a link to it, so nothing else from Debian's dist-packages leaks into the venv.
BCC_SRC=/usr/lib/python3/dist-packages/bcc
[ -d "$BCC_SRC" ] || fail "$BCC_SRC not found; is python3-bpfcc installed?"
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$VENV/bcc-site"
ln -sfn "$BCC_SRC" "$VENV/bcc-site/bcc"
if [ "$(cat "$site/openelb-bcc.pth" 2>/dev/null)" = "$VENV/bcc-site" ]; then
  say "bcc already importable in .venv"
else
  echo "$VENV/bcc-site" > "$site/openelb-bcc.pth"
  say "made Debian's bcc importable in .venv ($site/openelb-bcc.pth)"
fi
"$VENV/bin/python" -c 'import bcc' 2>/dev/null || fail "bcc does not import inside .venv"

say "done: $("$VENV/bin/openelb" version | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
