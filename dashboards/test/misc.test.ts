import { describe, expect, it } from 'vitest';

import { hasRole, registryLoader, REGISTRY_TTL_MS } from '../src/context';
import { FrameBatcher } from '../src/frame';
import { certStatus, gatewayStatus, OFFLINE_AFTER_MS } from '../src/pages/gateways';
import { looksLikeToken, loadToken, saveToken, clearToken, type KeyValueStorage } from '../src/session';
import type { Api } from '../src/api';
import type { Gateway, Me } from '../src/types';

describe('frame batching', () => {
  it('runs each key once per frame, with its latest task', () => {
    const frames: (() => void)[] = [];
    const b = new FrameBatcher((fn) => frames.push(fn));
    const runs: string[] = [];
    for (let i = 0; i < 1000; i += 1) b.schedule('tiles', () => runs.push(`tiles${i}`));
    b.schedule('feed', () => runs.push('feed'));
    expect(frames).toHaveLength(1);
    expect(b.pending).toBe(2);
    frames[0]?.();
    expect(runs).toEqual(['tiles999', 'feed']);
    b.schedule('x', () => runs.push('x'));
    expect(frames).toHaveLength(2);
  });

  it('cancels by prefix and survives a failing task', () => {
    const frames: (() => void)[] = [];
    const b = new FrameBatcher((fn) => frames.push(fn));
    const runs: string[] = [];
    b.schedule('sup-a', () => runs.push('a'));
    b.schedule('gw-b', () => {
      throw new Error('boom');
    });
    b.schedule('gw-c', () => runs.push('c'));
    b.cancel('sup-');
    const error = console.error;
    console.error = () => undefined;
    frames[0]?.();
    console.error = error;
    expect(runs).toEqual(['c']);
  });
});

function gateway(partial: Partial<Gateway> = {}, lastSeen: string | null = '2026-12-04T10:00:00.000000Z'): Gateway {
  return {
    tenant: 'demo',
    id: 'gw-1',
    key_id: 'k1',
    public_key_hex: '00',
    cert_fingerprint: null,
    cert_not_after: null,
    rejected_batches: 0,
    revoked: false,
    created_at: '2026-12-01T00:00:00.000000Z',
    state: {
      last_seen: lastSeen,
      spool_batches: 0,
      spool_bytes: 0,
      oldest_unacked_age_s: null,
      batches_dropped: 0,
      readings_dropped: 0,
      gaps: [],
      agent_version: '0.1.0',
      rss_bytes: 0,
      last_committed_seq: null,
    },
    ...partial,
  };
}

describe('gateway health', () => {
  const seen = Date.parse('2026-12-04T10:00:00Z');
  it('is online while heard recently, offline after, revoked above all', () => {
    expect(gatewayStatus(gateway(), seen + 1000)).toBe('online');
    expect(gatewayStatus(gateway(), seen + OFFLINE_AFTER_MS + 1)).toBe('offline');
    expect(gatewayStatus(gateway({}, null), seen)).toBe('offline');
    expect(gatewayStatus(gateway({ revoked: true }), seen)).toBe('revoked');
  });

  it('warns about certificates expiring within 7 days', () => {
    const day = 86_400_000;
    const at = (ms: number): string => new Date(ms).toISOString();
    expect(certStatus(null, seen)).toBe('none');
    expect(certStatus(at(seen + 30 * day), seen)).toBe('ok');
    expect(certStatus(at(seen + 6 * day), seen)).toBe('soon');
    expect(certStatus(at(seen - 1000), seen)).toBe('expired');
  });
});

describe('session', () => {
  it('recognises tokens', () => {
    expect(looksLikeToken('bfr_abcd_1234')).toBe(true);
    expect(looksLikeToken('  bfr_abcd_1234 ')).toBe(true);
    expect(looksLikeToken('abcd')).toBe(false);
    expect(looksLikeToken('bfr_')).toBe(false);
    expect(looksLikeToken('bfr_abc def')).toBe(false);
  });

  it('keeps the token in the given storage', () => {
    const data = new Map<string, string>();
    const storage: KeyValueStorage = {
      getItem: (k) => data.get(k) ?? null,
      setItem: (k, v) => void data.set(k, v),
      removeItem: (k) => void data.delete(k),
    };
    expect(loadToken(storage)).toBeNull();
    saveToken(storage, ' bfr_x_y ');
    expect(loadToken(storage)).toBe('bfr_x_y');
    clearToken(storage);
    expect(loadToken(storage)).toBeNull();
    expect(loadToken(null)).toBeNull();
  });

  it('roles are ordered', () => {
    const me = (role: 'viewer' | 'operator' | 'admin'): Me => ({
      scope: 'tenant',
      tenant: { id: 'demo', name: 'Demo' },
      role,
      token_id: 't',
      name: 'n',
    });
    expect(hasRole(me('viewer'), 'operator')).toBe(false);
    expect(hasRole(me('operator'), 'operator')).toBe(true);
    expect(hasRole(me('admin'), 'operator')).toBe(true);
    expect(hasRole(me('operator'), 'admin')).toBe(false);
    expect(hasRole({ scope: 'platform', token_id: 't', name: 'n' }, 'viewer')).toBe(false);
  });
});

describe('registry', () => {
  it('is fetched once, then again after a while', async () => {
    let calls = 0;
    let now = 0;
    const api = {
      get: async (path: string) => {
        calls += 1;
        return path.endsWith('sensors')
          ? { items: [{ tenant: 'demo', id: 's1', kind: 'air', unit: null, lat: 1, lon: 2, zone: 'z' }] }
          : { items: [{ tenant: 'demo', id: 'z', name: 'Zed', geometry: { type: 'Polygon', coordinates: [] } }] };
      },
    } as unknown as Api;
    const load = registryLoader(api, () => now);
    const r = await load();
    expect(r.sensorById.get('s1')?.zone).toBe('z');
    expect(r.zoneById.get('z')?.name).toBe('Zed');
    await load();
    expect(calls).toBe(2);
    now = REGISTRY_TTL_MS + 1;
    await load();
    expect(calls).toBe(4);
  });
});
