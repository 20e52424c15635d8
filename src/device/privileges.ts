/**
 * Dropping root once the daemon holds what needs it (`--user NAME` / WIREWEAVE_USER): the TUN
 * file descriptor, the UDP sockets and the UAPI listening socket stay open and usable; the
 * process then runs as NAME with NAME's groups, and cannot get root back.
 *
 * What no longer works afterwards, by design: binding a new listen port below 1024, changing
 * the fwmark (SO_MARK needs CAP_NET_ADMIN) — both answered with an error over the UAPI — and
 * removing the socket file on exit (/var/run/wireguard is root's; the next start or `wg`
 * clears the stale socket, as with a crashed wireguard-go).
 */
import { execFileSync } from 'node:child_process';
import { ConfigError, WireweaveError } from '../core/errors.ts';

export interface Account {
  name: string;
  uid: number;
  gid: number;
}

/** The uid and primary gid of `name` (a user name or a numeric uid), through id(1) so NSS applies. */
export function lookupUser(name: string): Account {
  if (!/^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}\$?$/.test(name)) throw new ConfigError('ERR_USER', `invalid user name ${JSON.stringify(name)}`);
  const id = (flag: string): number => {
    try {
      return Number(execFileSync('id', [flag, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    } catch {
      throw new ConfigError('ERR_USER', `no such user: ${name}`);
    }
  };
  const uid = id('-u'), gid = id('-g');
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new ConfigError('ERR_USER', `cannot look up user ${name}`);
  return { name, uid, gid };
}

/** The process calls this needs; `process` in the daemon, a double in tests. */
export interface ProcessIds {
  getuid(): number;
  geteuid(): number;
  setuid(id: number): void;
  setgid(id: number): void;
  setgroups(groups: number[]): void;
  initgroups(user: string, extraGroup: number): void;
}

/**
 * Becomes `account` for good: supplementary groups, then gid, then uid (the order that keeps
 * the right to change each), then checks that root cannot be regained. Throws a one-line
 * Error when not root or when any step fails.
 */
export function dropPrivileges(account: Account, proc: ProcessIds = process as unknown as ProcessIds): void {
  if (proc.geteuid() !== 0) throw new WireweaveError('ERR_PRIVILEGES', `cannot switch to user ${account.name}: not running as root`);
  if (account.uid === 0) throw new WireweaveError('ERR_PRIVILEGES', 'refusing to "drop" privileges to root');
  try {
    // A numeric name has no group database entry of its own: keep only the primary group.
    if (/^\d+$/.test(account.name)) proc.setgroups([account.gid]);
    else proc.initgroups(account.name, account.gid);
    proc.setgid(account.gid);
    proc.setuid(account.uid);
  } catch (err) {
    throw new WireweaveError('ERR_PRIVILEGES', `cannot switch to user ${account.name}: ${(err as Error).message}`, { cause: err });
  }
  let regained = false;
  try {
    proc.setuid(0);
    regained = true;
  } catch {
    // expected: root is gone for good
  }
  if (regained || proc.getuid() !== account.uid || proc.geteuid() !== account.uid) {
    throw new WireweaveError('ERR_PRIVILEGES', `switching to user ${account.name} did not drop root`);
  }
}
