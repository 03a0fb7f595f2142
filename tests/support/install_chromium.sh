#!/bin/sh
# Debian's Chromium for the web client's tests (Playwright drives it and downloads no browser).
# As root: apt-get. Otherwise, without root: the packages this machine lacks are downloaded
# and unpacked into DEST, and DEST/chromium runs the browser with their libraries.
# Usage: install_chromium.sh DEST
set -eu
dest=$(mkdir -p "$1" && cd "$1" && pwd)

command -v chromium >/dev/null 2>&1 && exit 0
[ -x "$dest/chromium" ] && exit 0
command -v apt-get >/dev/null 2>&1 || {
  echo "install_chromium: no apt-get here; install Chromium and set TRACKFLOW_CHROMIUM" >&2
  exit 1
}

if [ "$(id -u)" = 0 ]; then
  apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends chromium >/dev/null
  }
  exit 0
fi

state="$dest/apt"
mkdir -p "$state/lists/partial" "$state/archives/partial" "$dest/root"
apt="apt-get -q -o Dir::State::Lists=$state/lists -o Dir::Cache::Archives=$state/archives
     -o Debug::NoLocking=1"
$apt update >/dev/null
# what installing would fetch: the packages this machine lacks, and only those
$apt install -y --no-install-recommends --print-uris -qq chromium \
  | sed -n "s/^'\([^']*\)' \([^ ]*\) .*/\1 \2/p" >"$state/uris"
while read -r uri name; do
  python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
    "$uri" "$state/archives/$name"
  dpkg-deb -x "$state/archives/$name" "$dest/root"
done <"$state/uris"
rm -rf "$state/archives"
cat >"$dest/chromium" <<WRAPPER
#!/bin/sh
export LD_LIBRARY_PATH="$dest/root/usr/lib/x86_64-linux-gnu:$dest/root/usr/lib/aarch64-linux-gnu:$dest/root/lib/x86_64-linux-gnu:$dest/root/usr/lib/chromium\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "$dest/root/usr/lib/chromium/chromium" "\$@"
WRAPPER
chmod +x "$dest/chromium"
