/** GET `url` and return the status (the body is read and dropped). */
export async function get(url: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  await res.arrayBuffer();
  return res.status;
}

/** POST to `url` with no body, with a bearer token when given. */
export function post(url: string, token?: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(60_000),
  });
}
