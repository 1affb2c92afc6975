// The few DER encodings the test PKI needs beyond what @peculiar/x509 offers: Fulcio's issuer extension (.1.8)
// holds a DER UTF8String, and the SCT list extension holds an OCTET STRING.

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function derTagged(tag: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

export function derUtf8String(value: string): Buffer {
  return derTagged(0x0c, Buffer.from(value, "utf8"));
}

export function derOctetString(value: Uint8Array): Buffer {
  return derTagged(0x04, value);
}

// ---- Generic DER builders, for the test TSA's RFC 3161 tokens (CMS SignedData) ----

/** A TLV with any tag byte (universal, or context-specific such as 0xa0 for `[0]` constructed). */
export function derTlv(tag: number, content: Uint8Array): Buffer {
  return derTagged(tag, content);
}

export function derSequence(...items: Uint8Array[]): Buffer {
  return derTagged(0x30, Buffer.concat(items));
}

/** A SET OF: DER wants the elements sorted by their encodings. */
export function derSetOf(...items: Uint8Array[]): Buffer {
  const sorted = items.map((i) => Buffer.from(i)).sort(Buffer.compare);
  return derTagged(0x31, Buffer.concat(sorted));
}

/** A non-negative INTEGER in its minimal two's-complement form. */
export function derInteger(value: bigint | number): Buffer {
  let hex = BigInt(value).toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  let bytes = Buffer.from(hex, "hex");
  if ((bytes[0] ?? 0) & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return derTagged(0x02, bytes);
}

export function derOid(oid: string): Buffer {
  const arcs = oid.split(".").map((a) => BigInt(a));
  const [first = 0n, second = 0n, ...rest] = arcs;
  const bytes: number[] = [];
  for (const arc of [first * 40n + second, ...rest]) {
    const chunk: number[] = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) chunk.unshift(Number(v & 0x7fn) | 0x80);
    bytes.push(...chunk);
  }
  return derTagged(0x06, Buffer.from(bytes));
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** GeneralizedTime in whole seconds (`YYYYMMDDHHMMSSZ`): DER forbids trailing zeros in fractions. */
export function derGeneralizedTime(date: Date): Buffer {
  const d = date;
  const text = `${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
  return derTagged(0x18, Buffer.from(text, "ascii"));
}

/** UTCTime (`YYMMDDHHMMSSZ`), for dates from 1950 to 2049. */
export function derUtcTime(date: Date): Buffer {
  const d = date;
  const text = `${pad(d.getUTCFullYear() % 100)}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
  return derTagged(0x17, Buffer.from(text, "ascii"));
}
