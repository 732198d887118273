#!/usr/bin/env bash
# Installs what PASS needs to build and test on Debian 12, from Debian's archive only.
# Idempotent: packages already present are left alone. Uses sudo when not root.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_packages build-essential cmake ninja-build pkg-config git ca-certificates \
  libboost1.81-dev libboost-filesystem1.81-dev libboost-program-options1.81-dev \
  libssl-dev openssl libsodium-dev libcurl4-openssl-dev libpugixml-dev libfmt-dev doctest-dev \
  nlohmann-json3-dev libsqlite3-dev sqlite3 python3 clang-format ccache \
  libssh-dev openssh-server openssh-client \
  libical-dev libhowardhinnant-date-dev tzdata python3-aiosmtpd faketime dpkg-dev \
  libpq-dev postgresql-15 postgresql-contrib haproxy
