// The API token of this tab: kept in sessionStorage (gone when the tab closes), never in the
// URL after it was read from a `#token=` link.

export const TOKEN_KEY = 'beffroi.token';
export const LANG_KEY = 'beffroi.lang';

export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** `bfr_` then the id and secret (letters, digits, `_`, `-`). */
export function looksLikeToken(text: string): boolean {
  return /^bfr_[A-Za-z0-9_-]{4,}$/.test(text.trim());
}

export function loadToken(storage: KeyValueStorage | null): string | null {
  try {
    return storage?.getItem(TOKEN_KEY) ?? null;
  } catch {
    return null;
  }
}

export function saveToken(storage: KeyValueStorage | null, token: string): void {
  try {
    storage?.setItem(TOKEN_KEY, token.trim());
  } catch {
    // Storage disabled: the token lives in memory for this page only.
  }
}

export function clearToken(storage: KeyValueStorage | null): void {
  try {
    storage?.removeItem(TOKEN_KEY);
  } catch {
    // ignore
  }
}

export function safeSessionStorage(): KeyValueStorage | null {
  try {
    return typeof sessionStorage === 'undefined' ? null : sessionStorage;
  } catch {
    return null;
  }
}

export function safeLocalStorage(): KeyValueStorage | null {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage;
  } catch {
    return null;
  }
}
