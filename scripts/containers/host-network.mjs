// The host's network state that netavark changes (net.ipv4.ip_forward, NETAVARK* iptables
// chains, podman<N> bridges): snapshot before, put back after, and report what still differs.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { log, sh } from './shell.mjs';

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

function netavarkChains(bin) {
  const out = {};
  for (const table of ['nat', 'filter', 'mangle']) {
    const res = sh(bin, ['-w', '-t', table, '-S']);
    if (res.status !== 0) continue;
    out[table] = res.stdout.split('\n').filter((l) => /NETAVARK/.test(l));
  }
  return out;
}

/** netavark's bridges are named podman<N>; they go away with the last container on them. */
function bridges() {
  const res = sh('ip', ['-o', 'link', 'show', 'type', 'bridge']);
  return (res.stdout ?? '').split('\n').flatMap((l) => /^\d+: (podman\d+)[:@]/.exec(l)?.[1] ?? []);
}

export function snapshotNetwork() {
  return {
    ipForward: existsSync(IP_FORWARD) ? readFileSync(IP_FORWARD, 'utf8').trim() : undefined,
    v4: netavarkChains('iptables'),
    v6: netavarkChains('ip6tables'),
    bridges: bridges(),
  };
}

/** What still differs from the snapshot (empty when the host is as we found it). */
export function networkDrift(before) {
  const now = snapshotNetwork();
  const drift = [];
  if (now.ipForward !== before.ipForward)
    drift.push(`net.ipv4.ip_forward is ${now.ipForward}, was ${before.ipForward}`);
  for (const fam of ['v4', 'v6']) {
    for (const [table, lines] of Object.entries(now[fam])) {
      const had = new Set(before[fam][table] ?? []);
      const extra = lines.filter((l) => !had.has(l));
      if (extra.length > 0) drift.push(`${fam} ${table} table still has: ${extra.join(' | ')}`);
    }
  }
  const extraBridges = now.bridges.filter((b) => !before.bridges.includes(b));
  if (extraBridges.length > 0) drift.push(`bridges left: ${extraBridges.join(', ')}`);
  return drift;
}

/** Deletes the NETAVARK rules and chains that were not there before we started. */
function removeNewChains(bin, before) {
  const now = netavarkChains(bin);
  for (const [table, lines] of Object.entries(now)) {
    const had = new Set(before[table] ?? []);
    const fresh = lines.filter((l) => !had.has(l));
    // Rules first (jumps from the built-in chains and rules inside our chains), then chains.
    for (const l of fresh.filter((x) => x.startsWith('-A '))) {
      sh(bin, ['-w', '-t', table, '-D', ...splitRule(l.slice(3))]);
    }
    for (const l of fresh.filter((x) => x.startsWith('-N '))) {
      const chain = l.slice(3).trim();
      sh(bin, ['-w', '-t', table, '-F', chain]);
      sh(bin, ['-w', '-t', table, '-X', chain]);
    }
  }
}

/** Splits an `iptables -S` rule into arguments (quoted comments stay one argument). */
function splitRule(rule) {
  const args = [];
  for (const m of rule.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)) args.push(m[1] ?? m[2]);
  return args;
}

export function restoreNetwork(before) {
  if (before.ipForward !== undefined) {
    try {
      if (readFileSync(IP_FORWARD, 'utf8').trim() !== before.ipForward)
        writeFileSync(IP_FORWARD, `${before.ipForward}\n`);
    } catch (err) {
      log(`could not restore ${IP_FORWARD}: ${err.message}`);
    }
  }
  removeNewChains('iptables', before.v4);
  removeNewChains('ip6tables', before.v6);
}
