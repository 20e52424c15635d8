/**
 * Child of privileges.test.ts: a device on the memory twins serving its UAPI socket in the
 * directory given, then dropping root to the user given, as the daemon does with --user.
 * Prints "ready UID GID" and serves until killed.
 */
import { Device } from '../../src/device/device.ts';
import { MemoryBind, MemoryNetwork } from '../../src/device/bind-memory.ts';
import { MemoryTun } from '../../src/device/tun-memory.ts';
import { startUapiServer } from '../../src/device/uapi-server.ts';
import { dropPrivileges, lookupUser } from '../../src/device/privileges.ts';

const [dir, user] = process.argv.slice(2) as [string, string];
const device = new Device({ tun: new MemoryTun({ name: 'wwpriv0' }), bind: new MemoryBind(new MemoryNetwork(), '192.0.2.1') });
await device.up();
await startUapiServer('wwpriv0', device, { dir });
dropPrivileges(lookupUser(user));
process.stdout.write(`ready ${process.getuid!()} ${process.getgid!()}\n`);
setInterval(() => {}, 1 << 30);
