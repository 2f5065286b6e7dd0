import { readFileSync } from 'node:fs';

/**
 * Where a process's CPU went, from the .cpuprofile that `node --cpu-prof` writes at exit, over
 * the profile's last `seconds` (the idle window, not the start-up), largest first, `(idle)`
 * left out. Three views of the same samples: the function a sample was taken in (self time,
 * mostly Node internals), the deepest keeper function on its stack (which of our code paths
 * paid for it) and the deepest library (node_modules package) on its stack.
 */

interface ProfileNode {
  id: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface HotFunction {
  where: string;
  /** Self time in the window, ms. */
  selfMs: number;
  /** Share of the busy (non-idle) samples. */
  share: number;
}

function label(n: ProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const file = url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '');
  return `${functionName || '(anonymous)'}${file ? ` ${file}:${lineNumber + 1}` : ''}`;
}

export interface HotSpots {
  self: HotFunction[];
  /** By the deepest frame of our code (apps/, packages/) on the stack. */
  ours: HotFunction[];
  /** By the deepest node_modules package on the stack. */
  libraries: HotFunction[];
  busyMs: number;
}

const OURS = /\/(apps|packages)\/[^/]+\/(src|dist)\//;

function packageOf(url: string): string | null {
  const m = /\/node_modules\/((@[^/]+\/)?[^/]+)\//.exec(url.slice(url.lastIndexOf('/node_modules/')));
  return m?.[1] ?? null;
}

function top(m: Map<string, number>, busy: number, n: number): HotFunction[] {
  return [...m]
    .sort((x, y) => y[1] - x[1])
    .slice(0, n)
    .map(([where, us]) => ({ where, selfMs: us / 1000, share: busy ? us / busy : 0 }));
}

export function hotSpots(file: string, seconds: number, n = 10): HotSpots {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const parent = new Map<number, number>();
  for (const x of p.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
  const deepest = (id: number, test: (x: ProfileNode) => string | null): string => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const hit = test(byId.get(cur)!);
      if (hit) return hit;
    }
    return '(none)';
  };
  const from = p.endTime - seconds * 1e6;
  const [self, ours, libs] = [
    new Map<string, number>(),
    new Map<string, number>(),
    new Map<string, number>(),
  ];
  const add = (m: Map<string, number>, k: string, dt: number) => m.set(k, (m.get(k) ?? 0) + dt);
  let t = p.startTime;
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < from) continue;
    const node = byId.get(p.samples[i]!);
    if (!node || node.callFrame.functionName === '(idle)') continue;
    busy += dt;
    add(self, label(node), dt);
    add(
      ours,
      deepest(node.id, (x) => (OURS.test(x.callFrame.url) ? label(x) : null)),
      dt,
    );
    add(
      libs,
      deepest(node.id, (x) => packageOf(x.callFrame.url)),
      dt,
    );
  }
  return {
    self: top(self, busy, n),
    ours: top(ours, busy, n),
    libraries: top(libs, busy, n),
    busyMs: busy / 1000,
  };
}
