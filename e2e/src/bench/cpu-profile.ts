import { readFileSync } from 'node:fs';

/**
 * Where a process's CPU went, from the .cpuprofile that `node --cpu-prof` writes at exit:
 * samples by the function they were taken in (self time), over the profile's last `seconds`
 * (the idle window, not the start-up), largest first. `(idle)` is left out.
 */

interface ProfileNode {
  id: number;
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

export function hotFunctions(file: string, seconds: number, top = 10): HotFunction[] {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const from = p.endTime - seconds * 1e6;
  const self = new Map<string, number>();
  let t = p.startTime;
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < from) continue;
    const node = byId.get(p.samples[i]!);
    if (!node || node.callFrame.functionName === '(idle)') continue;
    const key = label(node);
    self.set(key, (self.get(key) ?? 0) + dt);
    busy += dt;
  }
  return [...self]
    .sort((x, y) => y[1] - x[1])
    .slice(0, top)
    .map(([where, us]) => ({ where, selfMs: us / 1000, share: busy ? us / busy : 0 }));
}
