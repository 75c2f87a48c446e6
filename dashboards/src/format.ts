// Formatting of numbers, units, sizes, durations and times for people, in English or French.
// Pure functions of their arguments (the language is passed in), so they are unit-tested.

import type { Lang } from './i18n';
import type { Value } from './types';

const numberFormats = new Map<string, Intl.NumberFormat>();
function numberFormat(lang: Lang, maxFraction: number): Intl.NumberFormat {
  const key = `${lang}/${maxFraction}`;
  let f = numberFormats.get(key);
  if (!f) {
    f = new Intl.NumberFormat(lang, { maximumFractionDigits: maxFraction });
    numberFormats.set(key, f);
  }
  return f;
}

/** A number with a precision that suits its magnitude (1234 → "1,234"; 12.345 → "12.3"). */
export function formatNumber(value: number, lang: Lang, maxFraction?: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  const digits = maxFraction ?? (abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3);
  return numberFormat(lang, digits).format(value);
}

/** SenML / UCUM unit strings as people write them. Unknown units are shown as sent. */
const UNIT_LABELS: Record<string, string> = {
  Cel: '°C',
  K: 'K',
  'ug/m3': 'µg/m³',
  'mg/m3': 'mg/m³',
  'g/m3': 'g/m³',
  ppm: 'ppm',
  ppb: 'ppb',
  '%RH': '% RH',
  '%': '%',
  '/': '',
  dB: 'dB',
  dBA: 'dB(A)',
  'dB(A)': 'dB(A)',
  Pa: 'Pa',
  hPa: 'hPa',
  'm/s': 'm/s',
  'km/h': 'km/h',
  lx: 'lx',
  W: 'W',
  kW: 'kW',
  Wh: 'Wh',
  kWh: 'kWh',
  V: 'V',
  A: 'A',
  m: 'm',
  mm: 'mm',
  'mm/h': 'mm/h',
  m3: 'm³',
  'm3/h': 'm³/h',
  l: 'L',
  'l/s': 'L/s',
  s: 's',
  count: '',
  '1': '',
  'count/min': '/min',
  'count/h': '/h',
  'veh/h': 'veh/h',
  'W/m2': 'W/m²',
};

export function formatUnit(unit: string | null | undefined): string {
  if (!unit) return '';
  return UNIT_LABELS[unit] ?? unit;
}

/** A value with its unit: numbers localised, booleans as words, strings as sent. */
export function formatValue(
  value: Value | null | undefined,
  unit: string | null | undefined,
  lang: Lang,
  words: { yes: string; no: string } = lang === 'fr' ? { yes: 'oui', no: 'non' } : { yes: 'yes', no: 'no' },
): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'boolean') return value ? words.yes : words.no;
  if (typeof value === 'string') return value;
  const u = formatUnit(unit);
  const n = formatNumber(value, lang);
  if (!u) return n;
  if (u === '%') return lang === 'fr' ? `${n}\u202f%` : `${n}%`;
  return `${n}\u00a0${u}`;
}

const BYTE_UNITS: Record<Lang, string[]> = {
  en: ['B', 'KiB', 'MiB', 'GiB', 'TiB'],
  fr: ['o', 'Kio', 'Mio', 'Gio', 'Tio'],
};

/** Binary sizes: 1536 → "1.5 KiB" (en) / "1,5 Kio" (fr). */
export function formatBytes(bytes: number, lang: Lang): string {
  const units = BYTE_UNITS[lang];
  let value = bytes;
  let i = 0;
  while (Math.abs(value) >= 1024 && i < units.length - 1) {
    value /= 1024;
    i += 1;
  }
  const text = i === 0 ? numberFormat(lang, 0).format(value) : numberFormat(lang, 1).format(value);
  return `${text}\u00a0${units[i] ?? ''}`;
}

const DURATION_UNITS: Record<Lang, { d: string; h: string; min: string; s: string }> = {
  en: { d: 'd', h: 'h', min: 'min', s: 's' },
  fr: { d: 'j', h: 'h', min: 'min', s: 's' },
};

/** A duration in seconds, with its two largest units: 45 → "45 s", 3725 → "1 h 2 min". */
export function formatDuration(seconds: number, lang: Lang): string {
  const u = DURATION_UNITS[lang];
  const total = Math.max(0, Math.round(seconds));
  const d = Math.floor(total / 86_400);
  const h = Math.floor((total % 86_400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const nb = '\u00a0';
  if (d > 0) return h > 0 ? `${d}${nb}${u.d} ${h}${nb}${u.h}` : `${d}${nb}${u.d}`;
  if (h > 0) return m > 0 ? `${h}${nb}${u.h} ${m}${nb}${u.min}` : `${h}${nb}${u.h}`;
  if (m > 0) return s > 0 ? `${m}${nb}${u.min} ${s}${nb}${u.s}` : `${m}${nb}${u.min}`;
  return `${s}${nb}${u.s}`;
}

const relativeFormats = new Map<Lang, Intl.RelativeTimeFormat>();
function relativeFormat(lang: Lang): Intl.RelativeTimeFormat {
  let f = relativeFormats.get(lang);
  if (!f) {
    f = new Intl.RelativeTimeFormat(lang, { numeric: 'auto', style: 'long' });
    relativeFormats.set(lang, f);
  }
  return f;
}

/**
 * `thenMs` relative to `nowMs`: "5 seconds ago", "in 3 days", "il y a 2 minutes". Times within
 * a few seconds read as "now" / "maintenant".
 */
export function formatRelative(thenMs: number, nowMs: number, lang: Lang): string {
  if (!Number.isFinite(thenMs)) return '—';
  const diffS = (thenMs - nowMs) / 1000;
  const abs = Math.abs(diffS);
  const f = relativeFormat(lang);
  if (abs < 5) return f.format(0, 'second');
  if (abs < 60) return f.format(Math.round(diffS), 'second');
  if (abs < 3600) return f.format(Math.round(diffS / 60), 'minute');
  if (abs < 86_400) return f.format(Math.round(diffS / 3600), 'hour');
  return f.format(Math.round(diffS / 86_400), 'day');
}

const dateTimeFormats = new Map<Lang, Intl.DateTimeFormat>();
/** A date and time in the browser's zone: "04/12/2026 10:00:01". */
export function formatDateTime(ms: number, lang: Lang): string {
  if (!Number.isFinite(ms)) return '—';
  let f = dateTimeFormats.get(lang);
  if (!f) {
    f = new Intl.DateTimeFormat(lang === 'fr' ? 'fr-FR' : 'en-GB', {
      dateStyle: 'short',
      timeStyle: 'medium',
    });
    dateTimeFormats.set(lang, f);
  }
  return f.format(new Date(ms));
}
