import { describe, expect, it } from 'vitest';

import { parseRoute, routeHash, sensorHref, tokenFromHash } from '../src/routes';

describe('hash routes', () => {
  it('parses every page', () => {
    expect(parseRoute('')).toEqual({ name: 'supervision' });
    expect(parseRoute('#')).toEqual({ name: 'supervision' });
    expect(parseRoute('#/')).toEqual({ name: 'supervision' });
    expect(parseRoute('#/gateways')).toEqual({ name: 'gateways' });
    expect(parseRoute('#/security/')).toEqual({ name: 'security' });
    expect(parseRoute('#/rules')).toEqual({ name: 'rules' });
    expect(parseRoute('#/agreements')).toEqual({ name: 'agreements' });
    expect(parseRoute('#/shared/')).toEqual({ name: 'shared' });
    expect(parseRoute('#/audit')).toEqual({ name: 'audit' });
    expect(parseRoute('#/audit/x').name).toBe('notFound');
    expect(parseRoute('#/login')).toEqual({ name: 'login' });
    expect(parseRoute('#/sensor/g1-air-1')).toEqual({ name: 'sensor', id: 'g1-air-1' });
    expect(parseRoute('#/sensor/g1-air-1?bucket=1m')).toEqual({ name: 'sensor', id: 'g1-air-1' });
    expect(parseRoute('#/sensor/a%20b')).toEqual({ name: 'sensor', id: 'a b' });
  });
  it('does not guess', () => {
    expect(parseRoute('#/sensor')).toEqual({ name: 'notFound', path: '/sensor' });
    expect(parseRoute('#/sensor/a/b').name).toBe('notFound');
    expect(parseRoute('#/nope').name).toBe('notFound');
    expect(parseRoute('#/sensor/%E0%A4%A').name).toBe('notFound');
  });
  it('round-trips', () => {
    for (const hash of ['#/', '#/gateways', '#/security', '#/rules', '#/agreements', '#/shared', '#/audit', '#/sensor/s-1']) {
      expect(routeHash(parseRoute(hash))).toBe(hash);
    }
    expect(sensorHref('a/b')).toBe('#/sensor/a%2Fb');
  });
});

describe('token in the fragment', () => {
  it('reads #token=…', () => {
    expect(tokenFromHash('#token=bfr_abc_def')).toBe('bfr_abc_def');
    expect(tokenFromHash('#token=bfr_abc_def&x=1')).toBe('bfr_abc_def');
    expect(tokenFromHash('#/?token=bfr_abc')).toBe('bfr_abc');
    expect(tokenFromHash('#x=1&token=bfr%5Fabc')).toBe('bfr_abc');
  });
  it('finds none elsewhere', () => {
    expect(tokenFromHash('')).toBeNull();
    expect(tokenFromHash('#/')).toBeNull();
    expect(tokenFromHash('#/gateways')).toBeNull();
    expect(tokenFromHash('#token=')).toBeNull();
    expect(tokenFromHash('#tokens=bfr_x')).toBeNull();
  });
});
