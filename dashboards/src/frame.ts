// Batches DOM work into one animation frame: live frames mark things dirty, and each key's
// work runs at most once per frame, however many values arrived.

export type Raf = (fn: () => void) => unknown;

const defaultRaf: Raf = (fn) =>
  typeof requestAnimationFrame === 'function'
    ? requestAnimationFrame(() => fn())
    : globalThis.setTimeout(fn, 16);

export class FrameBatcher {
  private readonly tasks = new Map<string, () => void>();
  private scheduled = false;

  constructor(private readonly raf: Raf = defaultRaf) {}

  /** Runs `fn` at the next frame; a later `schedule` with the same key replaces it. */
  schedule(key: string, fn: () => void): void {
    this.tasks.set(key, fn);
    if (!this.scheduled) {
      this.scheduled = true;
      this.raf(() => this.flush());
    }
  }

  /** Drops the pending tasks whose key starts with `prefix`. */
  cancel(prefix: string): void {
    for (const key of [...this.tasks.keys()]) if (key.startsWith(prefix)) this.tasks.delete(key);
  }

  /** Runs every pending task now. */
  flush(): void {
    this.scheduled = false;
    const tasks = [...this.tasks.values()];
    this.tasks.clear();
    for (const task of tasks) {
      try {
        task();
      } catch (e) {
        console.error(e);
      }
    }
  }

  get pending(): number {
    return this.tasks.size;
  }
}
