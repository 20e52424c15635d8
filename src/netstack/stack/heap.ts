/**
 * An indexed binary min-heap of deadlines: each item knows its slot, so moving or removing one
 * is O(log n) and the earliest deadline is O(1). The stack keeps one entry per TCP connection
 * whose `deadline` is the earliest of its timers.
 */
export interface Timed {
  /** Absolute time of the earliest timer, Infinity when none. */
  deadline: number;
  /** Slot in the heap, -1 when not in it. Owned by the heap. */
  heapIndex: number;
}

export class DeadlineHeap<T extends Timed> {
  private readonly items: T[] = [];

  get size(): number { return this.items.length; }

  peek(): T | undefined { return this.items[0]; }

  /** Earliest deadline, or Infinity. */
  min(): number { return this.items[0]?.deadline ?? Infinity; }

  /** Call after `item.deadline` changed: inserts, moves or (for Infinity) removes it. */
  update(item: T): void {
    if (item.deadline === Infinity) { this.remove(item); return; }
    if (item.heapIndex < 0) {
      item.heapIndex = this.items.length;
      this.items.push(item);
      this.up(item.heapIndex);
      return;
    }
    this.up(item.heapIndex);
    this.down(item.heapIndex);
  }

  remove(item: T): void {
    const i = item.heapIndex;
    if (i < 0) return;
    const last = this.items.pop()!;
    item.heapIndex = -1;
    if (last === item) return;
    this.items[i] = last;
    last.heapIndex = i;
    this.up(i);
    this.down(i);
  }

  private up(i: number): void {
    const items = this.items;
    const x = items[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent]!;
      if (p.deadline <= x.deadline) break;
      items[i] = p; p.heapIndex = i;
      i = parent;
    }
    items[i] = x; x.heapIndex = i;
  }

  private down(i: number): void {
    const items = this.items;
    const n = items.length;
    const x = items[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && items[c + 1]!.deadline < items[c]!.deadline) c++;
      const child = items[c]!;
      if (child.deadline >= x.deadline) break;
      items[i] = child; child.heapIndex = i;
      i = c;
    }
    items[i] = x; x.heapIndex = i;
  }
}
