import { describe, expect, it } from 'vitest';

import { MAX_TOKEN_HOURS, enrollBody, enrollCommand } from '../src/gatewayEnroll';

describe('gateway enrollment form', () => {
  it('builds the body with the token life in seconds', () => {
    expect(enrollBody(' gw-42 ', '24')).toEqual({ ok: true, body: { id: 'gw-42', ttl_s: 86_400 } });
    expect(enrollBody('gw-1', String(MAX_TOKEN_HOURS))).toEqual({ ok: true, body: { id: 'gw-1', ttl_s: 30 * 86_400 } });
  });

  it('names the fields in error', () => {
    const errors = (id: string, hours: string): string[] => {
      const r = enrollBody(id, hours);
      return r.ok ? [] : r.errors;
    };
    expect(errors('GW 1', '24')).toEqual(['id']);
    expect(errors('', '24')).toEqual(['id']);
    expect(errors('gw-1', '0')).toEqual(['hours']);
    expect(errors('gw-1', String(MAX_TOKEN_HOURS + 1))).toEqual(['hours']);
    expect(errors('gw-1', '1.5')).toEqual(['hours']);
    expect(errors('-x', 'soon')).toEqual(['id', 'hours']);
  });

  it('gives the command to run on the gateway', () => {
    const ticket = { gateway: 'gw-1', token: 'bfe1.abc.def', expires_at: '2026-12-05T10:00:00Z' };
    expect(enrollCommand({ ...ticket, enroll_url: 'https://beffroi.example:8443' })).toBe(
      'beffroi-agent enroll --url https://beffroi.example:8443 --token bfe1.abc.def',
    );
    expect(enrollCommand(ticket)).toContain('--url https://PLATFORM:8443 --token bfe1.abc.def');
  });
});
