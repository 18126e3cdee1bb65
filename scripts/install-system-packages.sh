#!/usr/bin/env bash
# Install the Debian packages Datalabs needs, only those missing (idempotent, quick when done).
#   base: to run the platform (desktop apps included)      test: to run the whole test suite and benchmarks
set -euo pipefail

# util-linux: nsenter and mount, with which the platform's quota check makes a workspace read-only inside a
# lab (sandbox/freeze.py); essential on Debian, listed so that a trimmed image says what is missing.
base=(python3 python3-venv python3-dev gcc bubblewrap git util-linux)
# Desktop datalabs: the VNC server, window managers (matchbox for one app, jwm with its taskbar and menu for
# several, as in the Astro desktop) and xdotool the session needs, then the apps (octave includes its Qt
# GUI, `octave --gui`). About 1 GB and under a minute from a Debian mirror.
desktop=(tigervnc-standalone-server novnc matchbox-window-manager jwm xdotool fonts-dejavu-core
         topcat aladin saods9 qfitsview ftools-fv filezilla octave)
# xclip: the desktop tests read and set a lab's X clipboard. e2fsprogs, xfsprogs: loop-mounted ext4 (prjquota)
# and XFS images for the quota tests.
test=(postgresql chromium chromium-driver wrk nginx websockify xclip e2fsprogs xfsprogs)

case "${1:-base}" in
  base) wanted=("${base[@]}" "${desktop[@]}") ;;
  test) wanted=("${base[@]}" "${desktop[@]}" "${test[@]}") ;;
  *) echo "usage: $0 base|test" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "not a Debian system: please install ${missing[*]} yourself" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
