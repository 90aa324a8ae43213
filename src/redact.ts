/** Masks the password of a URL (`postgres://user:***@host/db`); leaves anything else unchanged. */
export function maskUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)([^@\s]*)@/i, (_m, head: string) => `${head}***@`);
}

/** Replaces every known secret and every URL password inside a free text (error messages, logs). */
export function redactText(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)([^@\s]+)@/gi, (_m, head: string) => `${head}***@`);
  for (const secret of secrets) {
    if (secret.length >= 3) out = out.split(secret).join('***');
  }
  return out;
}
