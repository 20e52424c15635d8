/**
 * The load of bench/seal-rate.ts: UDP into the tunnel as fast as one thread can hand it to the
 * kernel. Each sendmsg carries SEGMENTS datagrams of LENGTH bytes with a UDP_SEGMENT control
 * message (src/device/linux/gso.ts); the kernel cuts them up before the TUN (it takes no UDP
 * offload), so the daemon reads ordinary packets. Through our koffi libc (as the Linux bind),
 * with the message in a SharedArrayBuffer whose address never moves.
 *
 *   node --import tsx bench/seal-gen.ts HOST PORT [LENGTH [SEGMENTS [RATE]]]
 *
 * RATE caps the datagrams per second (0, the default: no cap). Uncapped, the generator spends a
 * core on datagrams the daemon's TUN then drops; a cap just above what the daemon takes leaves
 * that core to the daemon (on a small machine the two compete).
 * Prints "sending" once started, and on SIGUSR1 a line "mark SENT ERRORS MS" (datagrams the
 * kernel took, failed sendmsg calls, performance.now()): the caller marks the start and end of
 * its window that way. SIGTERM prints the same as "done ..." and exits. The sending loop yields
 * every few milliseconds so that signals are seen.
 */
import { writeSegmentSize } from '../src/device/linux/gso.ts';
import { libc } from '../src/device/linux/libc.ts';
import {
  AF_INET, MSG_CONTROL, MSG_CONTROLLEN, MSG_IOV, MSG_IOVLEN, MSG_NAME, MSG_NAMELEN, SOCK_CLOEXEC, SOCK_DGRAM, SOCKADDR_IN, SOL_SOCKET,
} from '../src/device/linux/socket-abi.ts';

const SO_SNDTIMEO = 21;
const [host, portArg, lengthArg, segmentsArg, rateArg] = process.argv.slice(2);
if (!host || !portArg) {
  process.stderr.write('usage: seal-gen.ts HOST PORT [LENGTH [SEGMENTS [RATE]]]\n');
  process.exit(2);
}
const port = Number(portArg);
const length = Number(lengthArg ?? 1380);
const segments = Number(segmentsArg ?? 40);
const rate = Number(rateArg ?? 0);
if (!(length > 0 && segments > 0 && length * segments <= 65000 && segments <= 64 && rate >= 0)) {
  process.stderr.write(`seal-gen: ${segments} × ${length} bytes does not fit one UDP_SEGMENT send\n`);
  process.exit(2);
}

const lib = libc();
const fd = lib.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
if (fd < 0) { process.stderr.write(`seal-gen: socket: errno ${lib.errno()}\n`); process.exit(1); }
// A blocking socket that cannot block for long (a full send buffer waits at most 100 ms).
const tv = new Int32Array([0, 0, 100_000, 0]);
lib.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, tv, 16);

// Layout in one shared buffer: msghdr @0, iovec @64, sockaddr_in @96, control @128, data @256.
const MSG = 0, IOV = 64, NAME = 96, CONTROL = 128, DATA = 256;
const sab = new SharedArrayBuffer(DATA + length * segments);
const u8 = new Uint8Array(sab);
const i32 = new Int32Array(sab);
const base = lib.addressOf(u8);
const pointer = (at: number, address: number): void => {
  i32[at >> 2] = address % 0x100000000 | 0;
  i32[(at >> 2) + 1] = Math.floor(address / 0x100000000) | 0;
};
u8[NAME] = AF_INET;
u8[NAME + 2] = port >> 8; u8[NAME + 3] = port & 0xff;
u8.set(host.split('.').map(Number), NAME + 4);
pointer(MSG + MSG_NAME, base + NAME);
i32[(MSG + MSG_NAMELEN) >> 2] = SOCKADDR_IN;
pointer(MSG + MSG_IOV, base + IOV);
pointer(MSG + MSG_IOVLEN, 1);
pointer(MSG + MSG_CONTROL, base + CONTROL);
pointer(MSG + MSG_CONTROLLEN, segments > 1 ? writeSegmentSize(i32, CONTROL, length) : 0);
pointer(IOV, base + DATA);
pointer(IOV + 8, length * segments);
for (let i = DATA; i < u8.length; i++) u8[i] = i & 0xff;

let sent = 0;
let errors = 0;
const report = (what: string): void => {
  process.stdout.write(`${what} ${sent} ${errors} ${performance.now().toFixed(3)}\n`);
};
process.on('SIGUSR1', () => report('mark'));
process.on('SIGTERM', () => { report('done'); process.exit(0); });
process.on('SIGINT', () => { report('done'); process.exit(0); });

const SLICE_MS = 5;
const started = performance.now();
function burst(): void {
  const until = performance.now() + SLICE_MS;
  let now: number;
  do {
    for (let k = 0; k < 16; k++) {
      if (rate > 0 && sent >= ((performance.now() - started) / 1000) * rate) break;
      if (lib.sendmsg(fd, base + MSG, 0) >= 0) sent += segments;
      else { errors++; break; } // a timeout took 100 ms already: look at signals
    }
    now = performance.now();
  } while (now < until && (rate === 0 || sent < ((now - started) / 1000) * rate));
  // Capped and ahead of time: sleep (a timer tick is about 1 ms) instead of spinning.
  if (rate > 0 && sent >= ((now - started) / 1000) * rate) setTimeout(burst, 1);
  else setImmediate(burst);
}
process.stdout.write('sending\n');
burst();
