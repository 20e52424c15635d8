/**
 * The stack writes every outgoing packet into one reused buffer (StackIO.output borrows it for
 * the call): nothing of an earlier packet may show through in a later one, and a send from
 * inside output() must not overwrite the packet being handed out.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { finish, pseudoHeaderSum, sum16 } from '../../../src/core/checksum.ts';
import { TcpIpStack } from '../../../src/netstack/stack/stack.ts';

const A = Uint8Array.of(10, 0, 0, 1), B = Uint8Array.of(10, 0, 0, 2);

function transportVerifies(p: Uint8Array, protocol: number): boolean {
  const body = p.subarray(20, (p[2]! << 8) | p[3]!);
  const initial = protocol === 1 ? 0 : pseudoHeaderSum(A, B, protocol, body.length);
  return finish(sum16(body, 0, body.length, initial)) === 0;
}

describe('the stack\'s output buffer', () => {
  it('leaves nothing of a full packet in the next, smaller ones', () => {
    const out: Uint8Array[] = [];
    const s = new TcpIpStack({ addresses: ['10.0.0.1'], mtu: 1420 }, { output: (p) => out.push(p.slice()) });
    const u = s.udpBind(5000);
    assert.ok(u.send(new Uint8Array(1300).fill(0xff), { address: '10.0.0.2', port: 53 }, 0));
    assert.ok(u.send(new Uint8Array(0), { address: '10.0.0.2', port: 53 }, 0));
    assert.ok(s.ping('10.0.0.2', 7, 1, new Uint8Array(0), 0));
    assert.equal(out.length, 3);
    const [, udp, echo] = out as [Uint8Array, Uint8Array, Uint8Array];
    assert.equal(udp.length, 28);
    assert.ok(transportVerifies(udp, 17), 'the UDP checksum was computed over a cleared checksum field');
    assert.equal(echo.length, 28);
    assert.deepEqual([...echo.subarray(20, 22)], [8, 0], 'echo request, code 0');
    assert.ok(transportVerifies(echo, 1), 'ICMP checksum');
  });

  it('gives a send from inside output() a buffer of its own', () => {
    const seen: number[][] = [];
    let again = true;
    const s: TcpIpStack = new TcpIpStack({ addresses: ['10.0.0.1'], mtu: 1420 }, {
      output: (p) => {
        const before = [...p];
        if (again) { again = false; s.udpBind(6000).send(new Uint8Array(40).fill(0xee), { address: '10.0.0.2', port: 9 }, 0); }
        assert.deepEqual([...p], before, 'the packet changed under its receiver');
        seen.push(before);
      },
    });
    assert.ok(s.udpBind(5000).send(new Uint8Array(100).fill(0x11), { address: '10.0.0.2', port: 53 }, 0));
    assert.equal(seen.length, 2);
    assert.equal(seen[1]!.length, 128, 'the outer packet arrived whole');
  });
});
