// The boot image every UKI carries in `.splash`. Upstream's imager embeds its own (siderolabs/talos
// pkg/splash/splash.go GetBootImage, a BMP compiled into the imager binary, not a file of the imager image),
// so the factory draws one of its own: a ring on a dark background, 128 × 128, 24-bit, the same bytes on
// every build (UKIs stay reproducible).

import { bmp24, type Rgb } from "../formats/bmp.ts";

const side = 128;
const background: Rgb = [0x10, 0x16, 0x24];
const ring: Rgb = [0xf0, 0x82, 0x2c];

let cached: Buffer | undefined;

export function bootSplash(): Buffer {
  cached ??= bmp24(side, side, (x, y) => {
    const dx = x + 0.5 - side / 2;
    const dy = y + 0.5 - side / 2;
    const distance = Math.sqrt(dx * dx + dy * dy);
    return distance >= side * 0.3 && distance <= side * 0.4 ? ring : background;
  });
  return cached;
}
