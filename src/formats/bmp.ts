// Windows bitmaps (BMP), the format of a UKI's `.splash` section: systemd-stub draws it through the UEFI
// graphics output protocol and reads uncompressed (BI_RGB) 24-bit images among others (systemd
// src/boot/splash.c). Layout: a 14-byte file header ("BM", file size, pixel data offset), a 40-byte
// BITMAPINFOHEADER (positive height: rows stored bottom-up), then rows of blue-green-red triplets, each row
// padded to a multiple of 4 bytes.

import { badRequest } from "../errors.ts";

export type Rgb = readonly [red: number, green: number, blue: number];

const fileHeaderSize = 14;
const infoHeaderSize = 40;
/** 2835 pixels per metre ≈ 72 dpi, what most writers put in the resolution fields. */
const pixelsPerMetre = 2835;
const maxSide = 4096;

/** An uncompressed 24-bit BMP of `width` × `height` pixels, `pixel(x, y)` with y = 0 the top row. */
export function bmp24(width: number, height: number, pixel: (x: number, y: number) => Rgb): Buffer {
  for (const side of [width, height])
    if (!Number.isInteger(side) || side < 1 || side > maxSide)
      throw badRequest(`BMP sides must be whole numbers from 1 to ${maxSide} (got ${width}×${height})`);
  const rowBytes = Math.ceil((width * 3) / 4) * 4;
  const dataOffset = fileHeaderSize + infoHeaderSize;
  const out = Buffer.alloc(dataOffset + rowBytes * height);
  out.write("BM", 0, "latin1");
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(dataOffset, 10);
  out.writeUInt32LE(infoHeaderSize, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26); // planes
  out.writeUInt16LE(24, 28); // bits per pixel
  out.writeUInt32LE(0, 30); // BI_RGB
  out.writeUInt32LE(rowBytes * height, 34);
  out.writeInt32LE(pixelsPerMetre, 38);
  out.writeInt32LE(pixelsPerMetre, 42);
  for (let y = 0; y < height; y++) {
    const row = dataOffset + (height - 1 - y) * rowBytes;
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      out[row + x * 3] = b;
      out[row + x * 3 + 1] = g;
      out[row + x * 3 + 2] = r;
    }
  }
  return out;
}

export interface BmpInfo {
  width: number;
  height: number;
  bitsPerPixel: number;
  compression: number;
}

/** The header fields of a BMP, checked for the layout bmp24 writes (file size, offsets). */
export function readBmpInfo(data: Uint8Array): BmpInfo {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
  if (buf.length < fileHeaderSize + infoHeaderSize || buf.toString("latin1", 0, 2) !== "BM")
    throw badRequest('not a BMP: no "BM" header');
  if (buf.readUInt32LE(2) !== buf.length)
    throw badRequest(`BMP file size field ${buf.readUInt32LE(2)} ≠ ${buf.length}`);
  return {
    width: buf.readInt32LE(18),
    height: buf.readInt32LE(22),
    bitsPerPixel: buf.readUInt16LE(28),
    compression: buf.readUInt32LE(30),
  };
}
