/**
 * A tiny seeded pseudo-random generator (mulberry32) used everywhere the engine needs
 * randomness: adapter initialisation, data shuffling, the train/validation split, sampling.
 *
 * Why our own and not Math.random: runs must be reproducible from a seed, and a training run
 * that is stopped and resumed must continue with exactly the random numbers it would have drawn
 * had it not stopped. The whole state of mulberry32 is one 32-bit integer, so `state()` /
 * `Rng.fromState()` round-trip exactly and the state fits in a JSON checkpoint.
 */
export class Rng {
  /** The 32-bit generator state (kept as an unsigned integer). */
  private s: number;

  /**
   * @param seed any finite number; it is scrambled first so that nearby seeds (0, 1, 2, ...)
   *   give unrelated streams. Two generators built from the same seed produce the same sequence.
   */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`Rng seed must be a finite number, got ${seed}`);
    this.s = scramble(Math.trunc(seed) >>> 0);
  }

  /** Restores a generator from `state()`; the restored one continues the original's sequence. */
  static fromState(state: number): Rng {
    if (!Number.isInteger(state) || state < 0 || state > 0xffffffff) {
      throw new RangeError(`Rng state must be an unsigned 32-bit integer, got ${state}`);
    }
    const r = new Rng(0);
    r.s = state >>> 0;
    return r;
  }

  /** The complete state: an unsigned 32-bit integer (safe to store in JSON). */
  state(): number {
    return this.s >>> 0;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /**
   * A standard normal sample by Box-Muller. It draws two uniforms per call and deliberately does
   * not cache the second normal, so that `state()` alone describes the generator.
   */
  normal(): number {
    const u1 = 1 - this.next(); // (0, 1]: log(u1) is finite
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** A uniform integer in [0, n); n must be a positive integer. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`Rng.int needs a positive integer, got ${n}`);
    return Math.floor(this.next() * n);
  }

  /** Fisher-Yates shuffle of `a` IN PLACE; returns the same array for chaining. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = a[i] as T;
      a[i] = a[j] as T;
      a[j] = tmp;
    }
    return a;
  }
}

/** A 32-bit integer hash (the murmur3 finalizer) so that seeds 0, 1, 2 start far apart. */
function scramble(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}
