/**
 * Typed errors with stable codes. Packet processing never throws; these are for configuration
 * and API misuse, which must fail loudly and change nothing.
 */
const BRAND = Symbol.for('wireweave.error');

export class WireweaveError extends Error {
  readonly code: string;
  readonly [BRAND] = true;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'WireweaveError';
    this.code = code;
  }

  /** Works across realms and duplicated module copies, unlike instanceof. */
  static is(value: unknown): value is WireweaveError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/** Bad configuration: a key of the wrong length, a duplicate peer, an out-of-range value. */
export class ConfigError extends WireweaveError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = 'ConfigError';
  }
}
