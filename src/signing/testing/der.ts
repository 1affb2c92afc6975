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
