#!/bin/busybox sh
# The test bed's /init: does what Talos's early init does, just enough to prove a boot asset right, then
# prints ONE line "TESTBED-REPORT {json}" straight to the first serial port, /dev/ttyS0 (/dev/ttyAMA0, the
# PL011 of an arm64 `virt` machine, on aarch64; Talos's default command line has no serial console) and powers off.
#
# Build-time inputs, written into the initramfs next to this script:
#   /etc/testbed/early-modules   modules to insmod before anything can be mounted, dependencies first,
#                                one "path [param=value...]" per line (paths relative to /)
#   /rootfs.sqsh                 the base root filesystem (busybox + kernel modules)
#   /extensions.yaml             optional: squashfs layers to put above it, later layers winning
#
# Never `set -e`: whatever fails is recorded in the report's "errors", and the script always reaches poweroff
# (an init that exits panics the kernel, which under -no-reboot looks like a hang to the harness).

# --- JSON helpers -------------------------------------------------------------------------------------
# One string, as a JSON string literal. Control characters other than tab/newline are dropped.
jstr() {
	printf '%s' "$1" | tr -d '\000-\010\013-\037' | awk '
		BEGIN { ORS = ""; print "\"" }
		{
			if (NR > 1) print "\\n"
			s = $0
			gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, "\\t", s)
			print s
		}
		END { print "\"" }'
}

# Newline-separated lines as a JSON array of strings.
jarr() {
	out=""
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		out="$out${out:+,}$(jstr "$line")"
	done <<EOF
$1
EOF
	printf '[%s]' "$out"
}

# META records as a JSON object {"0x<tag hex>": "<value>"} from hex bytes on stdin (od -An -tx1 -v).
# mode=partition: a META block (BE u32 magic 0x5a4b3c2d, {BE u32 tag, BE u32 length, bytes}..., tag 0 ends).
# mode=cmdline: "0x<key>=<value>" pairs joined by ";" (INSTALLER_META_BASE64 after base64/gzip decoding).
# Printable ASCII is copied, quote/backslash/control bytes escaped, bytes >= 0x80 passed through (UTF-8).
META_AWK='
function hexval(h,   i, v) {
	v = 0
	for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
	return v
}
function be32(at) { return ((b[at] * 256 + b[at + 1]) * 256 + b[at + 2]) * 256 + b[at + 3] }
function text(from, to,   i, c, s) {
	s = ""
	for (i = from; i < to; i++) {
		c = b[i]
		if (c == 34) s = s "\\\""
		else if (c == 92) s = s "\\\\"
		else if (c == 10) s = s "\\n"
		else if (c < 32) s = s sprintf("\\u%04x", c)
		else s = s sprintf("%c", c)
	}
	return s
}
function emit(tag, from, to) {
	printf "%s\"0x%x\":\"%s\"", (count++ ? "," : ""), tag, text(from, to)
}
BEGIN { for (i = 0; i < 256; i++) byte[sprintf("%02x", i)] = i }
{ for (i = 1; i <= NF; i++) b[n++] = byte[tolower($i)] }
END {
	count = 0
	printf "{"
	if (mode == "partition") {
		# The records end 36 bytes before the block end (checksum and end magic live there).
		limit = 262144 - 36
		if (n >= 8 && be32(0) == hexval("5a4b3c2d")) {
			at = 4
			while (at + 8 <= limit && at + 8 <= n) {
				tag = be32(at); len = be32(at + 4)
				if (tag == 0 || at + 8 + len > limit || at + 8 + len > n) break
				emit(tag, at + 8, at + 8 + len)
				at += 8 + len
			}
		}
	} else {
		start = 0
		for (i = 0; i <= n; i++) {
			if (i < n && b[i] != 59) continue
			# A pair is b[start..i): "0x<hex key>=<value>".
			eq = -1
			for (j = start; j < i; j++) if (b[j] == 61) { eq = j; break }
			if (eq > start + 2 && b[start] == 48 && (b[start + 1] == 120 || b[start + 1] == 88)) {
				key = ""
				for (j = start + 2; j < eq; j++) key = key sprintf("%c", b[j])
				emit(hexval(tolower(key)), eq + 1, i)
			}
			start = i + 1
		}
	}
	printf "}"
}'


# META tags of a META partition (its first 256 KiB block) as a JSON object.
meta_from_partition() {
	od -An -tx1 -v -N 262144 "$1" | awk -v mode=partition "$META_AWK"
}

# META tags of an INSTALLER_META_BASE64 value as a JSON object. Talos gzips the pairs when they are long
# (>= 1.6.3), so a gzip magic means gunzip first.
meta_from_base64() {
	tmp=${TMPDIR:-/tmp}/testbed-meta.$$
	printf '%s\n' "$1" | base64 -d >"$tmp.raw" 2>/dev/null || { rm -f "$tmp.raw"; return 1; }
	if [ "$(od -An -tx1 -N2 "$tmp.raw" | tr -d ' \n')" = 1f8b ]; then
		gunzip -c <"$tmp.raw" >"$tmp.txt" || { rm -f "$tmp.raw" "$tmp.txt"; return 1; }
	else
		cp "$tmp.raw" "$tmp.txt"
	fi
	od -An -tx1 -v "$tmp.txt" | awk -v mode=cmdline "$META_AWK"
	rm -f "$tmp.raw" "$tmp.txt"
}

# --- extensions.yaml -> one "image<TAB>name<TAB>version" line per layer, in file order.
parse_extensions() {
	awk '
	function value(s) {
		sub(/^[^:]*:[ \t]*/, "", s); sub(/[ \t]+$/, "", s)
		if (s ~ /^".*"$/) { s = substr(s, 2, length(s) - 2); gsub(/\\"/, "\"", s) }
		else if (s ~ /^'"'"'.*'"'"'$/) { s = substr(s, 2, length(s) - 2); gsub(/'"''"'/, "'"'"'", s) }
		return s
	}
	function flush() { if (inLayer) printf "%s\t%s\t%s\n", image, name, version; inLayer = 0 }
	BEGIN { blockIndent = -1 }
	{
		sub(/\r$/, "")
		if ($0 ~ /^[ \t]*(#|$)/) next
		match($0, /^ */); indent = RLENGTH
		line = substr($0, indent + 1)
		# Inside a block scalar (e.g. extraInfo: | holding the schematic YAML): not keys, skip.
		if (blockIndent >= 0 && indent > blockIndent) next
		blockIndent = -1
		if (line ~ /:[ \t]+[|>][-+0-9]*[ \t]*$/) blockIndent = indent
		if (line ~ /^- /) {
			flush(); inLayer = 1; image = ""; name = ""; version = ""; mdIndent = -1
			indent += 2; line = substr(line, 3)
			layerIndent = indent
		}
		if (!inLayer) next
		if (mdIndent >= 0 && indent > mdIndent) {
			if (childIndent < 0) childIndent = indent
			if (indent == childIndent && line ~ /^name:/) name = value(line)
			if (indent == childIndent && line ~ /^version:/) version = value(line)
			next
		}
		mdIndent = -1
		if (indent == layerIndent && line ~ /^image:/) image = value(line)
		if (indent == layerIndent && line ~ /^metadata:[ \t]*$/) { mdIndent = indent; childIndent = -1 }
	}
	END { flush() }' "$1"
}

# Sourced with TESTBED_INIT_LIBRARY=1 (host-side tests of the parsers above), stop here.
[ -n "${TESTBED_INIT_LIBRARY:-}" ] && return 0

# --- Boot ----------------------------------------------------------------------------------------------
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /sys /dev /run /tmp /layers /newroot
/bin/busybox --install -s

ERRORS=""
fail() {
	ERRORS="$ERRORS$1
"
	echo "testbed: $1" >/dev/console 2>/dev/null
}

mount -t proc proc /proc || fail "mount /proc failed"
mount -t sysfs sysfs /sys || fail "mount /sys failed"
mount -t devtmpfs devtmpfs /dev || fail "mount /dev failed"
# Keep kernel messages off the console so they cannot split the report line.
dmesg -n 1

KVER=$(uname -r)
MACHINE=$(uname -m)
case "$MACHINE" in
aarch64) SERIAL=/dev/ttyAMA0 ;;
*) SERIAL=/dev/ttyS0 ;;
esac

# --- Early modules: what a busybox guest on Debian's kernel needs before it can mount anything -----------
if [ -f /etc/testbed/early-modules ]; then
	while read -r module params; do
		[ -n "$module" ] || continue
		# efivarfs refuses to load without EFI runtime services (BIOS boots).
		case "$module" in */efivarfs.ko) [ -d /sys/firmware/efi ] || continue ;; esac
		# shellcheck disable=SC2086 # params are separate words on purpose
		insmod "/$module" $params 2>/dev/null || grep -q "^$(basename "$module" .ko | tr - _) " /proc/modules ||
			fail "insmod $module failed"
	done </etc/testbed/early-modules
fi

FIRMWARE=bios
SECURE_BOOT=null
STUB=null
# A loader variable's value (UTF-16 text after the 4 attribute bytes) as ASCII, or nothing.
loadervar() {
	v=/sys/firmware/efi/efivars/$1-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
	[ -f "$v" ] && tail -c +5 "$v" | tr -d '\000'
}
if [ -d /sys/firmware/efi ]; then
	FIRMWARE=uefi
	mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null || fail "mount efivarfs failed"
	# EFI variable files are 4 attribute bytes followed by the value: SecureBoot is one byte, 1 = enabled.
	sb=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
	if [ -f "$sb" ]; then
		# Read it in order: efivarfs files do not seek, so `od -j` would see nothing.
		case "$(tail -c +5 "$sb" | od -An -tu1 -N1 | tr -d ' ')" in
		1) SECURE_BOOT=true ;;
		0) SECURE_BOOT=false ;;
		esac
	fi
	# systemd-stub names itself in StubInfo, and (from 257) the UKI profile it booted in StubProfile.
	stub_info=$(loadervar StubInfo)
	if [ -n "$stub_info" ]; then
		stub_profile=$(loadervar StubProfile)
		case "$stub_profile" in '' | *[!0-9]*) stub_profile=null ;; esac
		STUB="{\"info\":$(jstr "$stub_info"),\"profile\":$stub_profile}"
	fi
fi

# --- Root filesystem: rootfs.sqsh with the extension layers above it -----------------------------------
mkdir -p /layers/rootfs
mount -t squashfs -o ro,loop /rootfs.sqsh /layers/rootfs || fail "mount rootfs.sqsh failed"

LOWER=/layers/rootfs
EXTENSIONS=""
MODULE_LAYERS=""
if [ -f /extensions.yaml ]; then
	n=0
	TAB=$(printf '\t')
	while IFS="$TAB" read -r image name version; do
		n=$((n + 1))
		case "$image" in
		"" | /* | *..*)
			fail "extensions.yaml: layer $n has a bad image path \"$image\""
			continue
			;;
		esac
		dir=/layers/$n
		mkdir -p "$dir"
		if mount -t squashfs -o ro,loop "/$image" "$dir"; then
			LOWER="$dir:$LOWER" # overlayfs: the leftmost lower directory wins
			MODULE_LAYERS="$MODULE_LAYERS $dir"
		else
			fail "mount layer $image failed"
		fi
		ext="{\"image\":$(jstr "$image"),\"name\":$(jstr "$name"),\"version\":$(jstr "$version")}"
		EXTENSIONS="$EXTENSIONS${EXTENSIONS:+,}$ext"
	done <<EOF
$(parse_extensions /extensions.yaml)
EOF
fi

if [ "$LOWER" = /layers/rootfs ]; then
	# overlayfs needs two lower directories when it has no upper one.
	mount --bind /layers/rootfs /newroot || fail "bind mount of the rootfs failed"
else
	mount -t overlay overlay -o "ro,lowerdir=$LOWER" /newroot || fail "overlay mount failed"
fi
for fs in proc sys dev; do
	mount --bind "/$fs" "/newroot/$fs" 2>/dev/null || fail "bind mount of /$fs into the root failed"
done

# --- Extension kernel modules: modprobe with the root's (merged) modules.dep -----------------------------
# busybox modprobe reads /lib/modules/<kver>; from Talos 1.10 /lib is a symlink to usr/lib in the rootfs.
for dir in $MODULE_LAYERS; do
	for base in "$dir/lib/modules/$KVER" "$dir/usr/lib/modules/$KVER"; do
		[ -d "$base" ] || continue
		for ko in $(find "$base" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' | sort); do
			module=$(basename "$ko")
			module=${module%%.ko*}
			chroot /newroot /bin/busybox modprobe "$module" 2>/dev/console || fail "modprobe $module failed"
		done
	done
done

# --- Disk: partition names, and META from the partition of that name -----------------------------------
PARTITIONS=""
META_DEVICE=""
EFI_DEVICE=""
for uevent in /sys/class/block/*/uevent; do
	[ -f "$uevent" ] || continue
	DEVNAME=""
	PARTNAME=""
	while IFS='=' read -r key val; do
		case "$key" in
		DEVNAME) DEVNAME=$val ;;
		PARTNAME) PARTNAME=$val ;;
		esac
	done <"$uevent"
	[ -n "$PARTNAME" ] || continue
	PARTITIONS="$PARTITIONS${PARTITIONS:+,}{\"device\":$(jstr "$DEVNAME"),\"name\":$(jstr "$PARTNAME")}"
	[ "$PARTNAME" = META ] && [ -z "$META_DEVICE" ] && META_DEVICE=/dev/$DEVNAME
	[ "$PARTNAME" = EFI ] && [ -z "$EFI_DEVICE" ] && EFI_DEVICE=/dev/$DEVNAME
done
# What the test bed's board overlay installed into the EFI partition (testbed/board.txt), read-only.
BOARD=null
if [ -n "$EFI_DEVICE" ]; then
	mkdir -p /efi
	if mount -t vfat -o ro "$EFI_DEVICE" /efi 2>/dev/null; then
		[ -f /efi/testbed/board.txt ] && BOARD=$(jstr "$(cat /efi/testbed/board.txt)")
		umount /efi
	fi
fi
DISK=null
[ -n "$PARTITIONS" ] && DISK="{\"partitions\":[$PARTITIONS],\"overlayBoard\":$BOARD}"

META_SOURCE=none
META_TAGS="{}"
if [ -n "$META_DEVICE" ]; then
	META_SOURCE=partition
	META_TAGS=$(meta_from_partition "$META_DEVICE") ||
		fail "reading META from $META_DEVICE failed"
else
	for arg in $(cat /proc/cmdline); do
		case "$arg" in
		talos.environment=INSTALLER_META_BASE64=*)
			META_SOURCE=cmdline
			META_TAGS=$(meta_from_base64 "${arg#talos.environment=INSTALLER_META_BASE64=}") ||
				fail "INSTALLER_META_BASE64 cannot be decoded"
			;;
		esac
	done
fi

# --- Schematic: the factory's virtual extension leaves an empty file named by the schematic ID ----------
SCHEMATIC=null
for f in /newroot/usr/local/share/schematic/*; do
	[ -f "$f" ] || continue
	SCHEMATIC=$(jstr "$(basename "$f")")
	break
done

MODULES=$(cut -d' ' -f1 /proc/modules | sort)
REPORT="{\"cmdline\":$(jstr "$(cat /proc/cmdline)")"
REPORT="$REPORT,\"kernelRelease\":$(jstr "$KVER"),\"machine\":$(jstr "$MACHINE")"
REPORT="$REPORT,\"firmware\":\"$FIRMWARE\",\"secureBoot\":$SECURE_BOOT,\"stub\":$STUB"
REPORT="$REPORT,\"extensions\":[$EXTENSIONS]"
REPORT="$REPORT,\"modules\":$(jarr "$MODULES")"
REPORT="$REPORT,\"meta\":{\"source\":\"$META_SOURCE\",\"tags\":$META_TAGS}"
REPORT="$REPORT,\"schematicId\":$SCHEMATIC,\"disk\":$DISK"
REPORT="$REPORT,\"errors\":$(jarr "$ERRORS")}"

printf '\nTESTBED-REPORT %s\n' "$REPORT" >"$SERIAL"
# Give the UART time to drain before the machine goes away.
sleep 1
sync
poweroff -f
