#!/usr/bin/env bash
# The floor for bench/imager/run.ts: only the external tools a metal-amd64.iso and a metal-amd64.raw.zst
# (Talos >= 1.10: hybrid ISO, dual-boot disk) cannot be made without, run on the same inputs, each asset
# built cold (its own squashfs layers, cpio and UKI), as the imager does:
#   mksquashfs per extension, cpio | zstd -T0 -18 for the appended initramfs archive, objcopy for the UKI,
#   mkfs.vfat + mtools for the FAT images, grub-mkrescue for the ISO, grub-mkimage + mkfs.xfs -p + sgdisk +
#   dd for the disk, zstd -T0 -18 for the compressed image.
# What it leaves out is cheap or ours alone: the modules.dep layer (depmod), microcode, META, extension
# validation, the virtual schematic extension.
#
# usage: baseline.sh <work dir> <imager dir> <cmdline file> <extension dir>...
set -euo pipefail

work=$1 imager=$2 cmdline_file=$3
shift 3
extensions=("$@")
assets=$imager/usr/install/amd64
version=v1.10.3
mib=$((1024 * 1024))

initramfs() { # <dir>: the base initramfs with one zstd cpio of every extension's squashfs appended
  local dir=$1 i=0
  mkdir -p "$dir/cpio"
  printf 'layers:\n' >"$dir/cpio/extensions.yaml"
  for ext in "${extensions[@]}"; do
    mksquashfs "$ext/rootfs" "$dir/cpio/$i.sqsh" -noappend -no-progress -quiet -comp zstd -Xcompression-level 18 -all-root
    printf '    - image: %s.sqsh\n' "$i" >>"$dir/cpio/extensions.yaml"
    i=$((i + 1))
  done
  cp "$assets/initramfs.xz" "$dir/initramfs.xz"
  (cd "$dir/cpio" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) | zstd -T0 -18 -q >>"$dir/initramfs.xz"
}

uki() { # <dir>: systemd-stub + .osrel .cmdline .linux .initrd
  local dir=$1
  printf 'NAME="Talos"\nVERSION_ID=%s\n' "$version" >"$dir/osrel"
  cp "$cmdline_file" "$dir/cmdline"
  objcopy \
    --add-section .osrel="$dir/osrel" --change-section-vma .osrel=0x20000 \
    --add-section .cmdline="$dir/cmdline" --change-section-vma .cmdline=0x30000 \
    --add-section .linux="$assets/vmlinuz" --change-section-vma .linux=0x2000000 \
    --add-section .initrd="$dir/initramfs.xz" --change-section-vma .initrd=0x3000000 \
    "$assets/systemd-stub.efi" "$dir/uki.efi"
}

fat() { # <image> <size bytes> <uki>: FAT32 with systemd-boot, the UKI and loader.conf
  local image=$1 size=$2 uki=$3
  truncate -s "$size" "$image"
  mkfs.vfat -F 32 -n EFI --invariant "$image" >/dev/null
  printf 'timeout 10\n' >"$work/loader.conf"
  mmd -i "$image" ::EFI ::EFI/BOOT ::EFI/Linux ::loader
  mcopy -i "$image" "$assets/systemd-boot.efi" ::EFI/BOOT/BOOTX64.EFI
  mcopy -i "$image" "$uki" "::EFI/Linux/Talos-$version.efi"
  mcopy -i "$image" "$work/loader.conf" ::loader/loader.conf
}

grub_cfg() { # <file> <kernel path> <initrd path>
  printf 'set default=0\nset timeout=3\nmenuentry "Talos" {\n  linux %s %s\n  initrd %s\n}\n' "$2" "$(cat "$cmdline_file")" "$3" >"$1"
}

# --- metal-amd64.iso ---
iso=$work/iso
mkdir -p "$iso/tree/boot/grub" "$iso/tree/EFI/BOOT" "$iso/tree/EFI/Linux" "$iso/tree/loader"
initramfs "$iso"
uki "$iso"
ln "$assets/vmlinuz" "$iso/tree/boot/vmlinuz" 2>/dev/null || cp "$assets/vmlinuz" "$iso/tree/boot/vmlinuz"
ln "$iso/initramfs.xz" "$iso/tree/boot/initramfs.xz"
grub_cfg "$iso/tree/boot/grub/grub.cfg" /boot/vmlinuz /boot/initramfs.xz
cp "$assets/systemd-boot.efi" "$iso/tree/EFI/BOOT/BOOTX64.EFI"
ln "$iso/uki.efi" "$iso/tree/EFI/Linux/Talos-$version.efi"
printf 'timeout 10\n' >"$iso/tree/loader/loader.conf"
efi_bytes=$(((10 + ($(stat -c %s "$iso/uki.efi") + mib - 1) / mib + 1) * mib))
fat "$iso/tree/efiboot.img" "$efi_bytes" "$iso/uki.efi"
grub-mkrescue --compress=xz --output="$work/metal-amd64.iso" --directory=/usr/lib/grub/i386-pc \
  -m efiboot.img -iso-level 3 "$iso/tree" -eltorito-alt-boot -e --interval:appended_partition_2:all:: \
  -append_partition 2 0xef "$iso/tree/efiboot.img" -appended_part_as_gpt -partition_cyl_align all \
  -partition_offset 16 -iso_mbr_part_type 0x83 -no-emul-boot 2>/dev/null
rm -rf "$iso"

# --- metal-amd64.raw.zst (EFI 1101 MiB, BIOS 1 MiB, BOOT 1000 MiB, META 1 MiB; 2247 MiB image) ---
raw=$work/raw
mkdir -p "$raw/boot/A" "$raw/boot/grub"
initramfs "$raw"
uki "$raw"
fat "$raw/EFI.img" $((1101 * mib)) "$raw/uki.efi"
ln "$assets/vmlinuz" "$raw/boot/A/vmlinuz" 2>/dev/null || cp "$assets/vmlinuz" "$raw/boot/A/vmlinuz"
ln "$raw/initramfs.xz" "$raw/boot/A/initramfs.xz"
grub_cfg "$raw/boot/grub/grub.cfg" /A/vmlinuz /A/initramfs.xz
cat >"$raw/proto" <<PROTO
/
0 0
d--755 0 0
A d--755 0 0
initramfs.xz ---644 0 0 $raw/boot/A/initramfs.xz
vmlinuz ---644 0 0 $raw/boot/A/vmlinuz
\$
grub d--755 0 0
grub.cfg ---600 0 0 $raw/boot/grub/grub.cfg
\$
\$
PROTO
truncate -s $((1000 * mib)) "$raw/BOOT.img"
mkfs.xfs -q -n ftype=1 -f -L BOOT -p "$raw/proto" "$raw/BOOT.img"
grub-mkimage --directory /usr/lib/grub/i386-pc --format i386-pc --output "$raw/core.img" --prefix '(hd0,gpt3)/grub' \
  part_gpt ext2 fat xfs normal configfile linux boot search search_fs_uuid search_fs_file ls cat echo test help \
  reboot halt all_video biosdisk part_msdos
disk=$raw/disk.raw
truncate -s $((2247 * mib)) "$disk"
sgdisk -q -n 1:2048:+1101M -t 1:EF00 -c 1:EFI -n 2:0:+1M -t 2:EF02 -c 2:BIOS -n 3:0:+1000M -t 3:8300 -c 3:BOOT \
  -n 4:0:+1M -t 4:8300 -c 4:META "$disk"
dd if="$raw/EFI.img" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$raw/core.img" of="$disk" bs=1M seek=1102 conv=notrunc status=none
dd if="$raw/BOOT.img" of="$disk" bs=1M seek=1103 conv=notrunc,sparse status=none
dd if=/usr/lib/grub/i386-pc/boot.img of="$disk" bs=440 count=1 conv=notrunc status=none
zstd -T0 -18 -q -f "$disk" -o "$work/metal-amd64.raw.zst"
rm -rf "$raw"
