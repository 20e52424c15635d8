/**
 * Parameters for fast-check properties. The seed is random on each run unless PROPERTY_SEED
 * is set; fast-check prints the seed and path of a failure, and PROPERTY_SEED=<seed> replays it.
 * PROPERTY_RUNS=<factor> scales every property's runs (e.g. 10 for a long local campaign).
 */
export function fcParams(numRuns: number): { numRuns: number; seed?: number } {
  const factor = Number(process.env.PROPERTY_RUNS ?? 1);
  const seed = process.env.PROPERTY_SEED;
  return {
    numRuns: Math.max(1, Math.ceil(numRuns * (Number.isFinite(factor) && factor > 0 ? factor : 1))),
    ...(seed !== undefined && seed !== '' ? { seed: Number(seed) } : {}),
  };
}
