// El Torito boot images of an ISO 9660 image (the El Torito specification 1.0, section 2): the Boot Record
// Volume Descriptor points at the boot catalog, whose section entries give each boot image's platform and
// first 2048-byte sector. Used to find the UEFI image (platform 0xEF) a GRUB ISO carries and give its FAT a
// fixed volume serial number: Debian's grub-mkrescue (GRUB 2.06) ignores GRUB_FAT_SERIAL_NUMBER and writes a
// random one, the only bytes that otherwise differ between two builds of the same GRUB ISO.

import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { integrity } from "../errors.ts";

const sector = 2048;
const bootRecordId = "EL TORITO SPECIFICATION";
/** Volume descriptors read at most before giving up (the set terminator normally comes within a few). */
const maxDescriptors = 64;
/** Catalog entries read at most (one sector of 64 entries). */
const maxCatalogEntries = sector / 32;

export interface BootImage {
  /** 0 x86 BIOS, 0xEF UEFI. */
  platform: number;
  /** Byte offset of the image in the ISO. */
  offset: number;
}

async function readAt(handle: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, offset);
  if (bytesRead !== length) throw integrity(`ISO image: short read at ${offset}`);
  return buffer;
}

/** The boot images the catalog lists, in catalog order; [] for an ISO without El Torito. */
export async function elToritoBootImages(iso: string): Promise<BootImage[]> {
  const handle = await open(iso, "r");
  try {
    let catalogSector: number | undefined;
    for (let i = 0; i < maxDescriptors; i++) {
      const descriptor = await readAt(handle, (16 + i) * sector, sector);
      if (descriptor.toString("latin1", 1, 6) !== "CD001") throw integrity("ISO image: no volume descriptor set");
      const type = descriptor[0];
      if (type === 255) break;
      if (type === 0 && descriptor.toString("latin1", 7, 7 + bootRecordId.length) === bootRecordId) {
        catalogSector = descriptor.readUInt32LE(0x47);
        break;
      }
    }
    if (catalogSector === undefined) return [];
    const catalog = await readAt(handle, catalogSector * sector, sector);
    if (catalog[0] !== 1 || catalog[0x1e] !== 0x55 || catalog[0x1f] !== 0xaa)
      throw integrity("ISO image: the El Torito boot catalog has no validation entry");
    const images: BootImage[] = [];
    // The initial entry (the validation entry's platform), then sections of a header and its entries.
    let platform = catalog[1] as number;
    const entry = (at: number) => {
      if (catalog[at] === 0x88) images.push({ platform, offset: catalog.readUInt32LE(at + 8) * sector });
    };
    entry(32);
    for (let at = 64; at + 32 <= catalog.length && at / 32 < maxCatalogEntries; ) {
      const header = catalog[at];
      if (header !== 0x90 && header !== 0x91) break;
      platform = catalog[at + 1] as number;
      const count = catalog.readUInt16LE(at + 2);
      at += 32;
      for (let n = 0; n < count && at + 32 <= catalog.length; n++, at += 32) entry(at);
      if (header === 0x91) break;
    }
    return images;
  } finally {
    await handle.close();
  }
}

/**
 * Sets the volume serial number of the FAT file system each UEFI boot image holds (FAT12/16 at 0x27, FAT32 at
 * 0x43 of its boot sector). Returns how many images were changed.
 */
export async function setEfiBootImageSerial(iso: string, serial: number): Promise<number> {
  const images = (await elToritoBootImages(iso)).filter((image) => image.platform === 0xef);
  const handle = await open(iso, "r+");
  try {
    let changed = 0;
    for (const image of images) {
      const boot = await readAt(handle, image.offset, 512);
      if (boot[0x1fe] !== 0x55 || boot[0x1ff] !== 0xaa) continue;
      const at = boot.toString("latin1", 0x52, 0x57) === "FAT32" ? 0x43 : 0x27;
      if (at === 0x27 && !boot.toString("latin1", 0x36, 0x39).startsWith("FAT")) continue;
      const value = Buffer.alloc(4);
      value.writeUInt32LE(serial >>> 0);
      await handle.write(value, 0, 4, image.offset + at);
      changed++;
    }
    return changed;
  } finally {
    await handle.close();
  }
}
