import type { ConnParams } from './conninfo.js';
import { isConninfoUri, tokenizeKeyValue } from './conninfo.js';

export const REDACTED = '***';

/** Keywords whose values are secrets. */
const SECRET_KEYWORDS = new Set(['password', 'sslpassword', 'oauth_client_secret']);
const SECRET_NAMES = 'password|sslpassword|oauth_client_secret';

// `user:secret@` in any URI-looking text (postgres://, postgresql://, or any scheme://).
// The secret runs to the last '@' before the path, so an unencoded '@' in it still gets masked.
const URI_USERINFO = /([a-z][a-z0-9+.-]*:\/\/[^\s:@/?#'"]*:)([^\s/'"]*)(@)/gi;
// password=... as a query parameter or a key=value pair; the value may be quoted,
// possibly unterminated (then everything to the end is masked).
const KEY_VALUE = new RegExp(
  `(?<![A-Za-z0-9_])(${SECRET_NAMES})(\\s*=\\s*)('(?:[^'\\\\]|\\\\.)*(?:'|$)|(?:[^\\s&\\\\]|\\\\.)*)`,
  'gi',
);

function redactFreeText(s: string): string {
  return s.replace(URI_USERINFO, `$1${REDACTED}$3`).replace(KEY_VALUE, `$1$2${REDACTED}`);
}

function redactKeyValue(s: string): string {
  const tokens = tokenizeKeyValue(s);
  let out = '';
  let last = 0;
  for (const t of tokens) {
    if (!SECRET_KEYWORDS.has(t.key)) continue;
    out += s.slice(last, t.valueStart) + REDACTED;
    last = t.valueEnd;
  }
  return out + s.slice(last);
}

/**
 * Masks every password in `s` with `***`, whatever `s` is: a key=value conninfo, a URI,
 * or free text (a log line, an error message) that embeds one. Never throws; text that
 * does not parse still gets anything looking like `password=…` or `://user:secret@` masked.
 */
export function redactConninfo(s: string): string {
  if (typeof s !== 'string') return s;
  if (!isConninfoUri(s)) {
    try {
      // Exact for well-formed key=value strings (handles quoting and escapes); the free
      // text pass then catches URIs embedded in values (e.g. dbname='postgres://u:p@h').
      return redactFreeText(redactKeyValue(s));
    } catch {
      // not a conninfo: fall through to the pattern-based pass
    }
  }
  return redactFreeText(s);
}

/** A copy of `params` with secret values replaced by `***`, for logs and status output. */
export function redactParams(params: ConnParams): ConnParams {
  const out: ConnParams = {};
  for (const [k, v] of Object.entries(params)) out[k] = SECRET_KEYWORDS.has(k) ? REDACTED : redactConninfo(v);
  return out;
}
