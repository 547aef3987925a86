#!/usr/bin/env bash
# Checks the Debian package as an admin would meet it: lintian, install,
# the installed horad validating the installed config, every man page
# rendered, the bash completions loaded, the unit verified (where systemd is
# installed), then purge, leaving nothing behind. Safe to run twice.
#
#   bash deploy/build-deb.sh && bash deploy/check-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(ls -t target/debian/hora_*.deb | head -n 1)
echo "== lintian $deb"
# initial-upload-closes-no-bugs is the one warning kept: the package is not
# uploaded to Debian, so there is no ITP bug to close.
lintian --fail-on error,warning --suppress-tags initial-upload-closes-no-bugs "$deb"
echo "== maintainer scripts: start on install, stop on removal"
scripts=$(mktemp -d)
dpkg-deb -e "$deb" "$scripts"
grep -q "_dh_action=start" "$scripts/postinst"
grep -q "deb-systemd-invoke \$_dh_action horad.service" "$scripts/postinst"
grep -q "deb-systemd-invoke stop horad.service" "$scripts/prerm"
grep -q "deb-systemd-helper purge horad.service" "$scripts/postrm"
rm -rf "$scripts"
echo "== install"
dpkg --purge hora >/dev/null 2>&1 || true
dpkg -i "$deb"
trap 'dpkg --purge hora >/dev/null 2>&1 || true' EXIT
echo "== the installed horad checks the installed config"
/usr/sbin/horad --check-config --config /etc/hora/config.toml
/usr/bin/hora --version
echo "== man pages"
for page in man8/horad.8 man1/hora.1 man1/hora-time.1 man1/hora-sntp.1 man1/hora-roughtime.1 man5/hora-config.5; do
  lines=$(MANWIDTH=80 man -l "/usr/share/man/$page.gz" 2>/dev/null | wc -l)
  [ "$lines" -gt 10 ] || { echo "man $page rendered $lines lines"; exit 1; }
  echo "$page: $lines lines"
done
echo "== bash completions"
for command in horad hora; do
  bash -c "source /usr/share/bash-completion/completions/$command && complete -p $command"
done
echo "== the socket unit (an example, not enabled)"
test -f /usr/share/doc/hora/examples/horad.socket
[ ! -e /usr/lib/systemd/system/horad.socket ] || { echo "horad.socket is installed as a unit"; exit 1; }
if command -v systemd-analyze >/dev/null 2>&1; then
  echo "== systemd-analyze verify"
  systemd-analyze verify /usr/lib/systemd/system/horad.service
  # The example beside its service, as an admin installs it.
  units=$(mktemp -d)
  cp /usr/share/doc/hora/examples/horad.socket /usr/lib/systemd/system/horad.service "$units/"
  systemd-analyze verify "$units/horad.socket"
  rm -rf "$units"
fi
echo "== purge"
dpkg --purge hora
trap - EXIT
for gone in /usr/sbin/horad /usr/bin/hora /etc/hora/config.toml /usr/lib/systemd/system/horad.service; do
  [ ! -e "$gone" ] || { echo "$gone is still there after purge"; exit 1; }
done
echo "deb: checked"
