/**
 * Where a client stands in each group (last seq seen, last change-feed position seen).
 * `Subscribe(positions)` replays everything after these, so a dropped stream loses nothing.
 */
export interface Position {
  lastSeq: bigint;
  lastUpdateSeq: bigint;
}

/** Persists positions across page reloads (bigints are stored as decimal strings). */
export interface PositionStore {
  load(): Map<string, Position>;
  save(positions: ReadonlyMap<string, Position>): void;
}

export class MemoryPositionStore implements PositionStore {
  private data = new Map<string, Position>();

  load(): Map<string, Position> {
    return new Map(this.data);
  }

  save(positions: ReadonlyMap<string, Position>): void {
    this.data = new Map(positions);
  }
}

/** sessionStorage (per tab: survives reloads, not shared between tabs) or localStorage. */
export class WebStoragePositionStore implements PositionStore {
  constructor(
    private readonly storage: Storage,
    private readonly key: string,
  ) {}

  load(): Map<string, Position> {
    const out = new Map<string, Position>();
    try {
      const raw = this.storage.getItem(this.key);
      if (!raw) return out;
      const parsed = JSON.parse(raw) as Record<string, [string, string]>;
      for (const [group, [seq, updateSeq]] of Object.entries(parsed)) {
        out.set(group, { lastSeq: BigInt(seq), lastUpdateSeq: BigInt(updateSeq) });
      }
    } catch {
      // Corrupt or foreign data: start over.
    }
    return out;
  }

  save(positions: ReadonlyMap<string, Position>): void {
    const obj: Record<string, [string, string]> = {};
    for (const [group, p] of positions) obj[group] = [String(p.lastSeq), String(p.lastUpdateSeq)];
    try {
      this.storage.setItem(this.key, JSON.stringify(obj));
    } catch {
      // Quota or privacy mode: positions then only live in memory.
    }
  }
}

export function defaultPositionStore(key: string): PositionStore {
  try {
    if (typeof sessionStorage !== "undefined") return new WebStoragePositionStore(sessionStorage, key);
  } catch {
    // Access to storage can throw (sandboxed iframes).
  }
  return new MemoryPositionStore();
}
