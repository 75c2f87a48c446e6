// The REST client: bearer token on every call, query strings with repeated keys, and
// problem+json (RFC 9457) errors turned into ApiError with the server's `detail`.

import { t } from './i18n';
import type { Problem } from './types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly problem: Problem | null,
  ) {
    super(detail);
    this.name = 'ApiError';
  }
}

export class NetworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetworkError';
  }
}

export type QueryValue = string | number | boolean | null | undefined | readonly (string | number)[];

/** `?a=1&b=x&b=y`: arrays repeat the key; null and undefined are left out; all encoded. */
export function buildQuery(params: Record<string, QueryValue> | undefined): string {
  if (!params) return '';
  const parts: string[] = [];
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined) continue;
    const values = Array.isArray(value) ? value : [value];
    for (const v of values as readonly (string | number | boolean)[]) {
      parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(v))}`);
    }
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

export interface ApiOptions {
  token: () => string | null;
  /** Called when a request answers 401 (unless the request opts out). */
  onUnauthorized?: () => void;
  base?: string;
  fetch?: typeof fetch;
}

export interface RequestOptions {
  query?: Record<string, QueryValue>;
  body?: unknown;
  /** Send no Authorization header. */
  anonymous?: boolean;
  /** Do not call `onUnauthorized` on 401 (the login form handles it). */
  quiet401?: boolean;
  signal?: AbortSignal;
  /** Extra request headers (`If-Match`…). */
  headers?: Record<string, string>;
}

/** A downloaded file: its bytes and the name the server gave it. */
export interface Download {
  blob: Blob;
  name: string;
}

/** The file name of a `Content-Disposition: attachment; filename="…"` header, or `fallback`. */
export function attachmentName(disposition: string | null, fallback: string): string {
  const match = /filename="([^"\\/]+)"/.exec(disposition ?? '');
  return match?.[1] ?? fallback;
}

export class Api {
  constructor(private readonly opts: ApiOptions) {}

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.send(method, path, options, 'application/json');
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(response.status, 'invalid JSON in the response', null);
    }
  }

  /** A file (an export): fetched with the token, since a plain link cannot carry it. */
  async download(path: string, query: Record<string, QueryValue>, fallbackName: string): Promise<Download> {
    const response = await this.send('GET', path, { query }, '*/*');
    const blob = await response.blob();
    return { blob, name: attachmentName(response.headers.get('Content-Disposition'), fallbackName) };
  }

  /** Sends a request; a non-2xx answer is thrown as an ApiError. */
  private async send(method: string, path: string, options: RequestOptions, accept: string): Promise<Response> {
    const headers: Record<string, string> = { Accept: accept, ...options.headers };
    const token = this.opts.token();
    if (!options.anonymous && token) headers['Authorization'] = `Bearer ${token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    const url = `${this.opts.base ?? ''}${path}${buildQuery(options.query)}`;
    const doFetch = this.opts.fetch ?? globalThis.fetch.bind(globalThis);
    let response: Response;
    try {
      const init: RequestInit = { method, headers, credentials: 'omit', cache: 'no-store' };
      if (body !== undefined) init.body = body;
      if (options.signal) init.signal = options.signal;
      response = await doFetch(url, init);
    } catch (e) {
      if (e instanceof DOMException && e.name === 'AbortError') throw e;
      throw new NetworkError(e instanceof Error ? e.message : String(e));
    }
    if (response.status === 401 && !options.quiet401 && !options.anonymous) {
      this.opts.onUnauthorized?.();
    }
    if (!response.ok) throw await toApiError(response);
    return response;
  }

  get<T>(path: string, query?: Record<string, QueryValue>, options: RequestOptions = {}): Promise<T> {
    return this.request<T>('GET', path, query ? { ...options, query } : options);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, { body });
  }

  put<T>(path: string, body: unknown, headers?: Record<string, string>): Promise<T> {
    return this.request<T>('PUT', path, headers ? { body, headers } : { body });
  }

  delete(path: string): Promise<void> {
    return this.request<void>('DELETE', path);
  }
}

async function toApiError(response: Response): Promise<ApiError> {
  let problem: Problem | null = null;
  let detail = response.statusText || `HTTP ${response.status}`;
  try {
    const text = await response.text();
    if (text) {
      try {
        const parsed = JSON.parse(text) as unknown;
        if (parsed && typeof parsed === 'object') {
          problem = parsed as Problem;
          detail = problem.detail ?? problem.title ?? detail;
        }
      } catch {
        detail = text.slice(0, 300);
      }
    }
  } catch {
    // keep the status text
  }
  return new ApiError(response.status, detail, problem);
}

/** A message for people from any error a call can throw. */
export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 403) return t('error.forbidden', { detail: e.detail });
    return e.detail || t('error.status', { status: e.status, detail: '' });
  }
  if (e instanceof NetworkError) return t('error.network', { detail: e.message });
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Encodes one path segment. */
export const seg = (s: string | number): string => encodeURIComponent(String(s));
