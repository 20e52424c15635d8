/** Minimal IPv4/IPv6 ICMP echo packets for tests that talk to a real kernel through a tunnel. */

function sum16(b: Uint8Array, start: number, end: number, acc = 0): number {
  for (let i = start; i < end; i += 2) acc += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  return acc;
}

function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return ~acc & 0xffff;
}

export function parseIPv4(text: string): Uint8Array {
  return Uint8Array.from(text.split('.').map(Number));
}

/** Expands an IPv6 address (with ::) into 16 bytes. */
export function parseIPv6(text: string): Uint8Array {
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':').filter(Boolean) : [];
  const t = tail ? tail.split(':').filter(Boolean) : [];
  const groups = [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { const v = parseInt(g, 16); out[2 * i] = v >> 8; out[2 * i + 1] = v & 0xff; });
  return out;
}

export function icmpEcho4(src: string, dst: string, id: number, seq: number, payload: Uint8Array, reply = false): Uint8Array {
  const p = new Uint8Array(20 + 8 + payload.length);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, p.length);
  v.setUint16(4, id);
  p[8] = 64;
  p[9] = 1;
  p.set(parseIPv4(src), 12);
  p.set(parseIPv4(dst), 16);
  v.setUint16(10, fold(sum16(p, 0, 20)));
  p[20] = reply ? 0 : 8;
  v.setUint16(24, id);
  v.setUint16(26, seq);
  p.set(payload, 28);
  v.setUint16(22, fold(sum16(p, 20, p.length)));
  return p;
}

export function icmpEcho6(src: string, dst: string, id: number, seq: number, payload: Uint8Array, reply = false): Uint8Array {
  const p = new Uint8Array(40 + 8 + payload.length);
  const v = new DataView(p.buffer);
  p[0] = 0x60;
  v.setUint16(4, 8 + payload.length);
  p[6] = 58;
  p[7] = 64;
  p.set(parseIPv6(src), 8);
  p.set(parseIPv6(dst), 24);
  p[40] = reply ? 129 : 128;
  v.setUint16(44, id);
  v.setUint16(46, seq);
  p.set(payload, 48);
  // Pseudo-header: addresses, upper-layer length, next header.
  let acc = sum16(p, 8, 40);
  acc += 8 + payload.length + 58;
  v.setUint16(42, fold(sum16(p, 40, p.length, acc)));
  return p;
}

export interface Echo { version: 4 | 6; reply: boolean; id: number; seq: number; src: Uint8Array; dst: Uint8Array; payload: Uint8Array; checksumOk: boolean }

/** Parses an ICMP/ICMPv6 echo request or reply (ignoring transport padding), or null. */
export function parseEcho(p: Uint8Array): Echo | null {
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  if (p.length >= 28 && p[0]! >> 4 === 4 && p[9] === 1) {
    const total = v.getUint16(2);
    const ihl = (p[0]! & 15) * 4;
    if (total > p.length || (p[ihl] !== 0 && p[ihl] !== 8)) return null;
    return {
      version: 4, reply: p[ihl] === 0, id: v.getUint16(ihl + 4), seq: v.getUint16(ihl + 6),
      src: p.slice(12, 16), dst: p.slice(16, 20), payload: p.slice(ihl + 8, total),
      checksumOk: fold(sum16(p, 0, ihl)) === 0 && fold(sum16(p, ihl, total)) === 0,
    };
  }
  if (p.length >= 48 && p[0]! >> 4 === 6 && p[6] === 58) {
    const len = v.getUint16(4);
    if (40 + len > p.length || (p[40] !== 128 && p[40] !== 129)) return null;
    const acc = sum16(p, 8, 40) + len + 58;
    return {
      version: 6, reply: p[40] === 129, id: v.getUint16(44), seq: v.getUint16(46),
      src: p.slice(8, 24), dst: p.slice(24, 40), payload: p.slice(48, 40 + len),
      checksumOk: fold(sum16(p, 40, 40 + len, acc)) === 0,
    };
  }
  return null;
}
