import { readdirSync, readFileSync } from 'node:fs';

/**
 * The children of `pid` (Linux /proc): a postmaster's backends and workers. Each of them leads
 * its own process group (InitPostmasterChild calls setsid()), so signalling the postmaster's
 * group never reaches them.
 */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    const out: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry));
      } catch {
        // gone
      }
    }
    return out;
  }
}
