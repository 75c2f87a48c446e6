import { describe, expect, it } from 'vitest';

import {
  formatBytes,
  formatDuration,
  formatNumber,
  formatRelative,
  formatUnit,
  formatValue,
} from '../src/format';

const NBSP = '\u00a0';
const clean = (s: string): string => s.replace(/[\u00a0\u202f]/g, ' ');

describe('relative times', () => {
  const now = Date.parse('2026-12-04T10:00:00Z');
  it('reads naturally in English', () => {
    expect(formatRelative(now - 2000, now, 'en')).toBe('now');
    expect(formatRelative(now - 30_000, now, 'en')).toBe('30 seconds ago');
    expect(formatRelative(now - 5 * 60_000, now, 'en')).toBe('5 minutes ago');
    expect(formatRelative(now - 3 * 3_600_000, now, 'en')).toBe('3 hours ago');
    expect(formatRelative(now - 86_400_000, now, 'en')).toBe('yesterday');
    expect(formatRelative(now + 3 * 86_400_000, now, 'en')).toBe('in 3 days');
  });
  it('and in French', () => {
    expect(formatRelative(now - 2000, now, 'fr')).toBe('maintenant');
    expect(clean(formatRelative(now - 5 * 60_000, now, 'fr'))).toBe('il y a 5 minutes');
    expect(clean(formatRelative(now + 10 * 86_400_000, now, 'fr'))).toBe('dans 10 jours');
  });
  it('shows a dash for unknown times', () => {
    expect(formatRelative(Number.NaN, now, 'en')).toBe('—');
  });
});

describe('units and values', () => {
  it('writes SenML units as people do', () => {
    expect(formatUnit('Cel')).toBe('°C');
    expect(formatUnit('ug/m3')).toBe('µg/m³');
    expect(formatUnit('%RH')).toBe('% RH');
    expect(formatUnit('dBA')).toBe('dB(A)');
    expect(formatUnit('count')).toBe('');
    expect(formatUnit('furlong')).toBe('furlong');
    expect(formatUnit(null)).toBe('');
  });

  it('formats numbers with a precision that fits their size', () => {
    expect(formatNumber(12.345, 'en')).toBe('12.3');
    expect(formatNumber(1234.5, 'en')).toBe('1,235');
    expect(formatNumber(0.12345, 'en')).toBe('0.123');
    expect(clean(formatNumber(1234.5, 'fr'))).toBe('1 235');
    expect(formatNumber(12.345, 'fr')).toBe('12,3');
  });

  it('formats values with their unit', () => {
    expect(formatValue(21.456, 'Cel', 'en')).toBe(`21.5${NBSP}°C`);
    expect(formatValue(21.456, 'Cel', 'fr')).toBe(`21,5${NBSP}°C`);
    expect(formatValue(63.2, 'ug/m3', 'en')).toBe(`63.2${NBSP}µg/m³`);
    expect(formatValue(45, '%', 'en')).toBe('45%');
    expect(clean(formatValue(45, '%', 'fr'))).toBe('45 %');
    expect(formatValue(12, 'count', 'en')).toBe('12');
    expect(formatValue(true, null, 'en')).toBe('yes');
    expect(formatValue(false, null, 'fr')).toBe('non');
    expect(formatValue('open', null, 'en')).toBe('open');
    expect(formatValue(null, 'Cel', 'en')).toBe('—');
  });

  it('formats sizes in binary units', () => {
    expect(clean(formatBytes(0, 'en'))).toBe('0 B');
    expect(clean(formatBytes(1536, 'en'))).toBe('1.5 KiB');
    expect(clean(formatBytes(1536, 'fr'))).toBe('1,5 Kio');
    expect(clean(formatBytes(256 * 1024 * 1024, 'en'))).toBe('256 MiB');
  });

  it('formats durations with their two largest units', () => {
    expect(clean(formatDuration(45, 'en'))).toBe('45 s');
    expect(clean(formatDuration(600, 'en'))).toBe('10 min');
    expect(clean(formatDuration(200, 'en'))).toBe('3 min 20 s');
    expect(clean(formatDuration(3725, 'en'))).toBe('1 h 2 min');
    expect(clean(formatDuration(2 * 86_400 + 3 * 3600 + 5, 'en'))).toBe('2 d 3 h');
    expect(clean(formatDuration(2 * 86_400, 'fr'))).toBe('2 j');
    expect(clean(formatDuration(-5, 'en'))).toBe('0 s');
  });
});
