#!/usr/bin/env bash
# Installs the Debian packages boot-assets drives, when any is missing.
#   runtime  what the factory and the toolkit run (squashfs, depmod, compressors, FAT/XFS/ISO/GRUB tools)
#   test     runtime, plus the real components the tests drive (registry, skopeo, containerd, QEMU, Go, …)
#   bench    runtime, plus the baselines the benchmarks measure against (nginx, curl, CNCF distribution)
# As root it installs them; otherwise it uses sudo when there is one, or says what to run.
set -euo pipefail

runtime=(apt dpkg ca-certificates squashfs-tools kmod zstd xz-utils cpio tar binutils dosfstools mtools xfsprogs util-linux
  xorriso grub-pc-bin grub-efi-amd64-bin grub-common qemu-utils gdisk faketime)
test_only=(docker-registry skopeo containerd curl openssl iproute2 fdisk qemu-system-x86 ovmf systemd-boot-efi sbsigntool swtpm libtss2-esys-3.0.2-0 libtss2-tcti-swtpm0 libtss2-rc0
  make gcc libc6-dev flex bison dwarves golang-go golang-gopkg-yaml.v3-dev golang-github-google-uuid-dev file attr qemu-system-arm qemu-efi-aarch64 shellcheck chromium
  systemd golang-github-masterminds-sprig-dev mmdebstrap)
# make, gcc, libc6-dev, flex, bison, dwarves: the kernel-config tests build the kernel's Kconfig (conf) and run make olddefconfig
# (the shellcheck package) the release workflow's run scripts are checked with it; chromium: the web UI tests drive it
# systemd: systemd-analyze checks the unit in deploy/systemd; golang-github-masterminds-sprig-dev: the Helm chart is rendered with it;
# mmdebstrap: lays the Debian 12 root the Dockerfile's runtime stage is carried out in
bench_only=(nginx curl docker-registry)

case "${1:-runtime}" in
  runtime) wanted=("${runtime[@]}") ;;
  test) wanted=("${runtime[@]}" "${test_only[@]}") ;;
  bench) wanted=("${runtime[@]}" "${bench_only[@]}") ;;
  *) echo "usage: $0 [runtime|test|bench]" >&2; exit 2 ;;
esac

missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
((${#missing[@]})) || exit 0

install=(apt-get install -y -qq --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
  echo "boot-assets needs these Debian packages: ${missing[*]}" >&2
  echo "run as root: apt-get update && ${install[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" "${install[@]}"
# Debian's registry package starts a daemon on :5000 with its stock configuration; the tests start their own.
if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null 2>&1; then
  "${sudo[@]}" systemctl disable --now docker-registry 2>/dev/null || true
fi
# Debian's nginx starts a daemon on :80 with its stock site; the serving benchmark starts its own.
if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null 2>&1; then
  "${sudo[@]}" systemctl disable --now nginx 2>/dev/null || true
fi
