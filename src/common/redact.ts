// The password of a URL: everything between "scheme://user:" and the LAST '@' before the host —
// where the URL parser itself ends the user info, so a password containing '@' is masked whole
// (issue 9: it was masked up to its first '@' only). The user info cannot contain '/', '?' or '#'.
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)([^/?#\s]*)@/gi;

/** Masks the password of a URL (`postgres://user:***@host/db`); leaves anything else unchanged. */
export function maskUrl(url: string): string {
  return url.replace(new RegExp(`^${URL_PASSWORD.source}`, 'i'), (_m, head: string) => `${head}***@`);
}

// A secret this short would match inside ordinary words if replaced everywhere ("ab" in "about"),
// so it is replaced where it stands alone: not inside a run of letters and digits.
const SHORT_SECRET = 4;

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Replaces every known secret and every URL password inside a free text (error messages, logs). */
export function redactText(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(URL_PASSWORD, (_m, head: string) => `${head}***@`);
  // Longest first, so that a secret containing another is replaced whole.
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (secret.length === 0) continue;
    if (secret.length >= SHORT_SECRET) out = out.split(secret).join('***');
    else out = out.replace(new RegExp(`(?<![\\p{L}\\p{N}])${escapeRegExp(secret)}(?![\\p{L}\\p{N}])`, 'gu'), '***');
  }
  return out;
}
