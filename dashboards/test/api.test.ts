import { describe, expect, it, vi } from 'vitest';

import { Api, ApiError, attachmentName, buildQuery, NetworkError } from '../src/api';

function fakeFetch(status: number, body: string, contentType = 'application/json') {
  return vi.fn(async (_url: string, _init?: RequestInit) =>
    new Response(status === 204 ? null : body, { status, headers: { 'Content-Type': contentType } }),
  );
}

describe('query strings', () => {
  it('repeat array keys, skip nulls and encode', () => {
    expect(buildQuery({ state: ['open', 'acknowledged'], limit: 50, offset: null, x: undefined })).toBe(
      '?state=open&state=acknowledged&limit=50',
    );
    expect(buildQuery({ from: '2026-12-04T10:00:00+01:00' })).toBe('?from=2026-12-04T10%3A00%3A00%2B01%3A00');
    expect(buildQuery({})).toBe('');
    expect(buildQuery(undefined)).toBe('');
  });
});

describe('REST client', () => {
  it('sends the bearer token and parses JSON', async () => {
    const f = fakeFetch(200, '{"items":[]}');
    const api = new Api({ token: () => 'bfr_a_b', fetch: f as unknown as typeof fetch });
    await expect(api.get('/api/v1/gateways')).resolves.toEqual({ items: [] });
    const init = f.mock.calls[0]?.[1];
    expect((init?.headers as Record<string, string>)['Authorization']).toBe('Bearer bfr_a_b');
  });

  it('sends JSON bodies', async () => {
    const f = fakeFetch(201, '{"id":"r1"}');
    const api = new Api({ token: () => 'bfr_a_b', fetch: f as unknown as typeof fetch });
    await api.post('/api/v1/alarm-rules', { name: 'x' });
    const init = f.mock.calls[0]?.[1];
    expect(init?.method).toBe('POST');
    expect(init?.body).toBe('{"name":"x"}');
    expect((init?.headers as Record<string, string>)['Content-Type']).toBe('application/json');
  });

  it('turns problem+json into ApiError with the detail', async () => {
    const f = fakeFetch(
      400,
      '{"type":"urn:beffroi:problem:bad-request","title":"Bad Request","status":400,"detail":"condition.after_s: must be 10..=604800"}',
      'application/problem+json',
    );
    const api = new Api({ token: () => 'bfr_a_b', fetch: f as unknown as typeof fetch });
    const error = await api.put('/api/v1/alarm-rules/x', {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(400);
    expect((error as ApiError).detail).toBe('condition.after_s: must be 10..=604800');
  });

  it('calls onUnauthorized on 401 unless told not to', async () => {
    const onUnauthorized = vi.fn();
    const f = fakeFetch(401, '{"detail":"unknown token"}', 'application/problem+json');
    const api = new Api({ token: () => 'bfr_a_b', fetch: f as unknown as typeof fetch, onUnauthorized });
    await expect(api.get('/api/v1/me', undefined, { quiet401: true })).rejects.toBeInstanceOf(ApiError);
    expect(onUnauthorized).not.toHaveBeenCalled();
    await expect(api.get('/api/v1/sensors')).rejects.toBeInstanceOf(ApiError);
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
  });

  it('answers undefined on 204 and wraps network failures', async () => {
    const api = new Api({ token: () => 'bfr_a_b', fetch: fakeFetch(204, '') as unknown as typeof fetch });
    await expect(api.delete('/api/v1/alarm-rules/x')).resolves.toBeUndefined();
    const broken = new Api({
      token: () => null,
      fetch: (async () => {
        throw new TypeError('Failed to fetch');
      }) as unknown as typeof fetch,
    });
    await expect(broken.get('/api/v1/me')).rejects.toBeInstanceOf(NetworkError);
  });

  it('keeps a non-JSON error body as the detail', async () => {
    const api = new Api({ token: () => null, fetch: fakeFetch(502, 'Bad gateway', 'text/plain') as unknown as typeof fetch });
    const e = (await api.get('/x').catch((x: unknown) => x)) as ApiError;
    expect(e.detail).toBe('Bad gateway');
  });
});

describe('downloads', () => {
  it('fetch the file with the token and name it as the server says', async () => {
    const f = vi.fn(async (_url: string, _init?: RequestInit) =>
      new Response('time,value\r\n2026-01-01T00:00:00Z,1\r\n', {
        status: 200,
        headers: {
          'Content-Type': 'text/csv; charset=utf-8; header=present',
          'Content-Disposition': 'attachment; filename="lyon_open_20260101T000000Z_20260102T000000Z.csv"',
        },
      }),
    );
    const api = new Api({ token: () => 'bfr_a_b', fetch: f as unknown as typeof fetch });
    const file = await api.download('/api/v1/shared/lyon/export', { purpose: 'research', metric: ['air.*'], format: 'csv' }, 'lyon.csv');
    expect(file.name).toBe('lyon_open_20260101T000000Z_20260102T000000Z.csv');
    expect(await file.blob.text()).toBe('time,value\r\n2026-01-01T00:00:00Z,1\r\n');
    const [url, init] = f.mock.calls[0] ?? [];
    expect(url).toBe('/api/v1/shared/lyon/export?purpose=research&metric=air.*&format=csv');
    const headers = init?.headers as Record<string, string>;
    expect(headers['Authorization']).toBe('Bearer bfr_a_b');
    expect(headers['Accept']).toBe('*/*');
  });

  it('turn a denial into an ApiError, and fall back on a name', async () => {
    const f = fakeFetch(403, '{"type":"urn:beffroi:problem:access-denied","title":"Forbidden","status":403,"detail":"no agreement","reason":"no_agreement"}', 'application/problem+json');
    const api = new Api({ token: () => 'bfr_a_b', fetch: f as unknown as typeof fetch });
    const denied = api.download('/api/v1/shared/lyon/export', { purpose: 'research' }, 'lyon.csv');
    await expect(denied).rejects.toBeInstanceOf(ApiError);
    await expect(denied).rejects.toMatchObject({ status: 403, detail: 'no agreement' });
    expect(attachmentName(null, 'lyon.csv')).toBe('lyon.csv');
    expect(attachmentName('attachment; filename="../x"', 'lyon.csv')).toBe('lyon.csv');
  });
});
