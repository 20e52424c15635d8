/** What the kernel accepts as an interface name (and wireguard-go as INTERFACE-NAME). */
export function isInterfaceName(name: string): boolean {
  return /^[A-Za-z0-9_=+.-]{1,15}$/.test(name) && name !== '.' && name !== '..';
}
