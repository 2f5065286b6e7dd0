import { type Queryable, quoteIdent, quoteLiteral } from '@pgfleet/connection';

/**
 * ALTER SYSTEM SET name = value (or RESET when value is null), then pg_reload_conf().
 * ALTER SYSTEM is a utility statement: no bind parameters, so the value is quoted here.
 * It cannot run inside a transaction block, so `q` must not be in one.
 */
export async function alterSystemAndReload(q: Queryable, name: string, value: string | null): Promise<void> {
  const stmt =
    value === null
      ? `ALTER SYSTEM RESET ${quoteIdent(name)}`
      : `ALTER SYSTEM SET ${quoteIdent(name)} = ${quoteLiteral(value)}`;
  await q.query(stmt);
  await q.query('SELECT pg_reload_conf()');
}

/*
 * pg_reload_conf() only signals the postmaster, which re-signals every backend; each backend
 * (ours included) re-reads the files at its next idle point. So the new value is visible to
 * our session some milliseconds later, never synchronously: poll. pg_settings.reset_val is
 * the configured value even if this session SET the parameter locally.
 */
const SETTING_SQL = 'SELECT reset_val FROM pg_settings WHERE name = $1';

export async function readConfiguredSetting(q: Queryable, name: string): Promise<string> {
  const { rows } = await q.query(SETTING_SQL, [name]);
  if (!rows[0]) throw new Error(`unknown setting ${name}`);
  return String(rows[0].reset_val);
}

/** Polls until `matches(value)` or the time is up; returns the last value seen and whether it matched. */
export async function waitForSetting(
  q: Queryable,
  name: string,
  matches: (value: string) => boolean,
  timeoutMs: number,
  pollMs = 20,
): Promise<{ ok: boolean; last: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await readConfiguredSetting(q, name);
    if (matches(last)) return { ok: true, last };
    if (Date.now() >= deadline) return { ok: false, last };
    await new Promise((resolve) => setTimeout(resolve, Math.min(pollMs, Math.max(1, deadline - Date.now()))));
  }
}
