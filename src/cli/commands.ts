/**
 * What `wireweave WORD` means when WORD is not one of our commands: wireguard-go takes any
 * valid interface name there, so we do too, except for words a wg or wg-quick user types by
 * habit (wg's subcommands, wg-quick's verbs) and near-misses of our own commands. Those are
 * refused with a hint instead of silently becoming an interface and a background daemon.
 */

/** Our subcommands (main.ts dispatches them). */
const COMMANDS = ['genkey', 'pubkey', 'genpsk', 'demo', 'up', 'down', 'show', 'proxy', 'forward', 'hub', 'help', 'version'] as const;

/** `wg --help`'s subcommands we do not implement, and wg-quick's verbs we do not implement. */
const WG_ONLY = ['showconf', 'set', 'setconf', 'addconf', 'syncconf'];
const WG_QUICK_ONLY = ['save', 'strip'];

/** Linux's IFNAMSIZ less the terminating NUL. */
const IFNAME_MAX = 15;

/** Optimal string alignment distance: edits, with a swap of two neighbours counting as one. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The command `word` is most likely a typo of, or null. A word ending in a digit is never a
 * typo (`demo1`, `show2`: interface names), `up` tolerates no edit (`wg`, `vpn` are names), 3-4 letter commands one (`shwo`, `dwn`), longer ones two
 * (`genky`, `froward`).
 */
export function nearestCommand(word: string): string | null {
  // None of our commands has a digit; names like wg0, demo1 or show2 are interface names.
  if (/[0-9]$/.test(word)) return null;
  const w = word.toLowerCase();
  let best: string | null = null, bestDistance = Infinity;
  for (const c of COMMANDS) {
    const d = editDistance(w, c);
    const tolerance = c.length <= 2 ? 0 : c.length <= 4 ? 1 : 2;
    if (d <= tolerance && d < bestDistance) { best = c; bestDistance = d; }
  }
  return best;
}

/**
 * Why `word`, typed where a command or an interface name goes, must not become an interface,
 * as a one-line message (without the `wireweave: ` prefix), or null when it may.
 */
export function refuseAsInterfaceName(word: string): string | null {
  const lower = word.toLowerCase();
  const bypass = `(for an interface of that name: wireweave -- ${word})`;
  if (WG_ONLY.includes(lower)) {
    return `'${word}' is a wg command, which wireweave does not implement; did you mean \`wg ${lower}\`? ` +
      `(wg works on wireweave's interfaces) ${bypass}`;
  }
  if (WG_QUICK_ONLY.includes(lower)) {
    return `'${word}' is a wg-quick command, which wireweave does not implement; did you mean \`wg-quick ${lower}\`? ${bypass}`;
  }
  if (word.length > IFNAME_MAX && /^[A-Za-z0-9_=+.-]+$/.test(word)) {
    // Echoed only when it reads as a word: never a pasted key (base64 keys end in '=').
    const shown = /^[A-Za-z][A-Za-z0-9_.-]{0,39}$/.test(word) ? ` '${word}'` : '';
    return `unknown command${shown}, and too long for an interface name ` +
      `(${word.length} characters; Linux allows at most ${IFNAME_MAX})`;
  }
  const near = nearestCommand(word);
  if (near && near !== lower) return `unknown command '${word}'; did you mean \`wireweave ${near}\`? ${bypass}`;
  if (near && near === lower) return `unknown command '${word}'; commands are lower case: \`wireweave ${near}\``;
  return null;
}

/** The INTERFACE-NAME of `wireweave [FLAGS] INTERFACE-NAME`: the first word that is not a flag or a flag's value. */
export function interfaceArgument(argv: readonly string[], flag: RegExp): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--metrics' || a === '--user') i++;
    else if (!flag.test(a)) return a;
  }
  return undefined;
}
