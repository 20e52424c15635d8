/**
 * The TUN edge: where IP packets enter and leave the device. Linux TUN (linux/tun.ts), the
 * in-memory twin (tun-memory.ts) and later the netstack all implement it.
 */
export interface Tun {
  readonly name: string;
  /** MTU of the interface (the device pads and limits packets to it). */
  readonly mtu: number;
  /**
   * Begin reading: `onPacket` gets each IP packet the OS (or the twin) sends into the tunnel.
   * The view is valid only during the call.
   */
  start(onPacket: (packet: Uint8Array) => void): void;
  /** Write one IP packet out of the tunnel (to the OS). Returns false if it was dropped. */
  write(packet: Uint8Array): boolean;
  /** Called once when the interface goes away underneath us (e.g. `ip link del`). */
  onClose(listener: (reason: string) => void): void;
  /** Closes the device; resolves when it is gone. */
  close(): Promise<void>;
}
