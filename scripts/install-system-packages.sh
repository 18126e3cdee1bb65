#!/usr/bin/env bash
# Install the Debian packages Datalabs needs, only those missing (idempotent, quick when done).
#   base: to run the platform (desktop apps included)      test: to run the whole test suite and benchmarks
set -euo pipefail

# util-linux: nsenter, prlimit and mount (sandboxes enter their network namespace and get their process
# limit through them; the quota check makes a workspace read-only inside a lab, sandbox/freeze.py);
# iproute2 and passt (pasta): network namespaces with outbound access for builds and labs that may reach
# the internet (sandbox/network.py); libseccomp2: the sandboxes' seccomp filter (sandbox/seccomp.py);
# gcc and libc6-dev: datalabs-become, the last step into a sandbox (sandbox/become.c).
base=(python3 python3-venv python3-dev gcc libc6-dev bubblewrap git util-linux iproute2 passt libseccomp2)
# Desktop datalabs: the VNC server, window managers (matchbox for one app, jwm with its taskbar and menu for
# several, as in the Astro desktop) and xdotool the session needs, then the apps (octave includes its Qt
# GUI, `octave --gui`). About 1 GB and under a minute from a Debian mirror.
desktop=(tigervnc-standalone-server novnc matchbox-window-manager jwm xdotool fonts-dejavu-core
         topcat aladin saods9 qfitsview ftools-fv filezilla octave)
# xclip: the desktop tests read and set a lab's X clipboard. e2fsprogs, xfsprogs: loop-mounted ext4 (prjquota)
# and XFS images for the quota tests; qemu-system-x86, busybox-static: the VM those tests run in when this
# kernel has no ext4 quotas (see test_kernel below). slurm-wlm (slurmctld, slurmd, slurm-client: sbatch, squeue,
# sacct, scancel, scontrol) and munge: the single-node Slurm cluster the tests start on loopback under a temp
# dir (tests/runtimes/slurm_cluster.py); the packages' own services are not used. slurmdbd and mariadb-server:
# that cluster's accounting (sacct), with a private MariaDB in the same temp dir.
test=(postgresql chromium chromium-driver wrk nginx websockify xclip e2fsprogs xfsprogs qemu-system-x86
      busybox-static slurm-wlm slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

case "${1:-base}" in
  base) wanted=("${base[@]}" "${desktop[@]}") ;;
  test) wanted=("${base[@]}" "${desktop[@]}" "${test[@]}") ;;
  *) echo "usage: $0 base|test" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

# The ext4 project-quota tests need a kernel with ext4 quotas. Where this one has none (built without
# CONFIG_QFMT_V2, as these machines' kernels are) they run in a Debian kernel under QEMU
# (tests/sandbox/kernel_vm.py): its image and the module folders the VM loads from are unpacked here once.
test_kernel() {
  local dir=/var/cache/datalabs-test/kernel tmp pkg
  [ -f "$dir/vmlinuz" ] && return 0
  zcat /proc/config.gz 2>/dev/null | grep -q '^CONFIG_QFMT_V2=' && return 0
  [ -r /proc/config.gz ] || return 0  # a kernel that does not say is taken to have them
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
  tmp=$(mktemp -d)
  echo "unpacking $pkg for the quota tests' VM into $dir"
  (cd "$tmp" && apt-get download -qq "$pkg" 2>/dev/null && dpkg-deb -x ./*.deb x)
  mkdir -p "$dir/modules"
  for sub in fs net/9p drivers/virtio drivers/block crypto lib arch; do
    mkdir -p "$dir/modules/$sub"
    cp -a "$tmp"/x/lib/modules/*/kernel/$sub/. "$dir/modules/$sub/"
  done
  cp "$tmp"/x/boot/vmlinuz-* "$dir/vmlinuz"  # last: its presence says the rest is there
  rm -rf "$tmp"
}

if [ ${#missing[@]} -eq 0 ]; then
  [ "${1:-base}" = test ] && test_kernel
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "not a Debian system: please install ${missing[*]} yourself" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ "${1:-base}" = test ] && test_kernel
exit 0
