#!/usr/bin/env bash
# Builds the Windows (x86_64-w64-mingw32, posix threads) dependencies of pass-svp.exe from
# Debian's source packages, static, into a cache directory outside the tree, and prints that
# directory (the prefix) on stdout.
#
#   scripts/windows-deps.sh            build when missing, print the prefix
#
# The prefix is ${PASS_WINDOWS_DEPS_CACHE:-${XDG_CACHE_HOME:-~/.cache}/pass/windows-deps}/<key>, where
# <key> is a hash of this script: a change to it builds a new prefix; an unchanged script reuses
# the one built before (about 13 minutes on 2 cores from scratch).
# Built: OpenSSL 3 (libcrypto, libssl), libcurl (HTTP(S) only, OpenSSL backend), Boost 1.81
# filesystem and program_options. Header-only: fmt and pugixml (from their source packages),
# nlohmann-json and doctest (Debian's headers). Sources come with Debian's patches applied.
# docs/building-windows.md explains the choices.
set -euo pipefail
key="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)"
cache="${PASS_WINDOWS_DEPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pass/windows-deps}"
prefix="$cache/$key"
if [ -f "$prefix/.complete" ]; then
  echo "$prefix"
  exit 0
fi
# Callers capture stdout as the prefix: everything else (apt-get, dpkg, the builds) goes to
# stderr, and only the last line below goes to the saved stdout.
exec 3>&1 1>&2

PASS_LOG=windows-deps
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
log() { say "$*"; }

# apt-get source needs deb-src entries; derive them from the binary sources when absent.
have_src() { apt-get indextargets --format '$(IDENTIFIER)' 2>/dev/null | grep -qx Sources; }
if ! have_src; then
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    log "adding deb-src entries (/etc/apt/sources.list.d/pass-deb-src.sources)"
    sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
      as_root tee /etc/apt/sources.list.d/pass-deb-src.sources >/dev/null
  elif [ -f /etc/apt/sources.list ]; then
    log "adding deb-src entries (/etc/apt/sources.list.d/pass-deb-src.list)"
    sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list |
      as_root tee /etc/apt/sources.list.d/pass-deb-src.list >/dev/null
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
fi
need_packages g++-mingw-w64-x86-64-posix gcc-mingw-w64-x86-64-posix binutils-mingw-w64-x86-64 \
  mingw-w64-x86-64-dev make perl bison dpkg-dev xz-utils nlohmann-json3-dev doctest-dev

work="$cache/build-$key"
rm -rf "$work" "$prefix"
mkdir -p "$work" "$prefix/include" "$prefix/lib"
cd "$work"
start=$SECONDS

# Unpacks a Debian source package with its patches into ./<name>; falls back to the upstream
# tarball alone when the mirror lacks the .dsc (seen for security uploads).
fetch() {
  local pkg="$1" name="$2"
  mkdir -p "dl-$pkg"
  if (cd "dl-$pkg" && apt-get source -qq "$pkg" >/dev/null 2>&1); then
    local dir
    dir="$(find "dl-$pkg" -mindepth 1 -maxdepth 1 -type d | head -n1)"
    mv "$dir" "$name"
  else
    log "$pkg: no complete source package; using the upstream tarball without Debian's patches"
    (cd "dl-$pkg" && apt-get source -qq --download-only "$pkg" >/dev/null 2>&1) || true
    local tarball
    tarball="$(find "dl-$pkg" -name '*.orig.tar.*' ! -name '*.asc' | head -n1)"
    [ -n "$tarball" ] || { log "$pkg: cannot download its source"; exit 1; }
    mkdir "$name"
    tar -xf "$tarball" -C "$name" --strip-components=1
  fi
  rm -rf "dl-$pkg"
}

host=x86_64-w64-mingw32
export CC=$host-gcc-posix CXX=$host-g++-posix AR=$host-ar RANLIB=$host-ranlib RC=$host-windres
export WINDRES=$host-windres

log "OpenSSL"
fetch openssl openssl
# The OPENSSLDIR compiled in is where Windows admins would look; PASS never reads it (the agent
# passes its home CA to curl explicitly).
(cd openssl &&
  ./Configure mingw64 no-shared no-module no-tests --cross-compile-prefix= \
    --prefix="$prefix" --libdir=lib --openssldir='C:/ProgramData/PASS/ssl' >/dev/null)
(cd openssl && make -s -j2 build_libs >/dev/null && make -s install_dev >/dev/null)

log "curl"
fetch curl curl
(cd curl &&
  ./configure -q --host=$host --prefix="$prefix" --disable-shared --enable-static \
    --with-openssl="$prefix" --without-ca-bundle --without-ca-path --without-zlib \
    --without-brotli --without-zstd --without-libpsl --without-libidn2 --without-nghttp2 \
    --without-libssh2 --without-librtmp --disable-ldap --disable-ldaps --disable-rtsp \
    --disable-dict --disable-telnet --disable-tftp --disable-pop3 --disable-imap \
    --disable-smb --disable-smtp --disable-gopher --disable-mqtt --disable-ftp --disable-file \
    --disable-manual --disable-docs \
    PKG_CONFIG_LIBDIR="$prefix/lib/pkgconfig" CPPFLAGS="-I$prefix/include" LDFLAGS="-L$prefix/lib" \
    LIBS="-lws2_32 -lcrypt32 -lbcrypt -lgdi32 -luser32 -ladvapi32" >/dev/null &&
  make -s -j2 -C lib >/dev/null && make -s -C lib install >/dev/null &&
  make -s -C include install >/dev/null && install -m 644 libcurl.pc "$prefix/lib/pkgconfig/")

log "Boost filesystem, program_options"
fetch boost1.81 boost
(cd boost &&
  (cd tools/build && bison -y -d -o src/engine/jamgram.cpp src/engine/jamgram.y) &&
  CC=gcc CXX=g++ ./bootstrap.sh --with-libraries=filesystem,program_options >/dev/null &&
  echo "using gcc : mingw : $host-g++-posix : <rc>$host-windres <archiver>$host-ar <ranlib>$host-ranlib ;" >user-config.jam &&
  ./b2 -q -d0 --user-config=user-config.jam toolset=gcc-mingw target-os=windows address-model=64 \
    architecture=x86 binary-format=pe abi=ms threading=multi link=static runtime-link=static \
    variant=release cxxstd=20 --with-filesystem --with-program_options --layout=system \
    --prefix="$prefix" -j2 install >/dev/null)

log "header-only: fmt, pugixml, nlohmann-json, doctest"
fetch fmtlib fmt
cp -r fmt/include/fmt "$prefix/include/"
fetch pugixml pugixml
cp pugixml/src/pugixml.hpp pugixml/src/pugiconfig.hpp pugixml/src/pugixml.cpp "$prefix/include/"
cp -r /usr/include/nlohmann "$prefix/include/"
cp -r /usr/include/doctest "$prefix/include/"

cd "$cache"
rm -rf "$work"
touch "$prefix/.complete"
log "built in $((SECONDS - start)) s: $prefix"
echo "$prefix" >&3
