import { describe, expect, it } from 'vitest';

import {
  detectLang,
  getLang,
  interpolate,
  LANGS,
  MESSAGES,
  placeholders,
  pluralKey,
  setLang,
  t,
  tIn,
  tn,
  type MessageKey,
} from '../src/i18n';
import { BUCKETS } from '../src/series';
import {
  COMPARISONS,
  GAP_REASONS,
  QUARANTINE_REASONS,
  RULE_KINDS,
  SECURITY_EVENT_KINDS,
  SEVERITIES,
} from '../src/types';
import {
  ACTIONS,
  AGREEMENT_STATES,
  AUDIT_KINDS,
  DENY_REASONS,
  FIELDS,
  FUNCTIONS,
  GRANTEE_KINDS,
  LIVE_REASONS,
  PURPOSES,
  SPATIAL_LEVELS,
} from '../src/governanceTypes';
import { RANGES, SHARED_KINDS } from '../src/sharedQuery';

const en = MESSAGES.en;
const fr = MESSAGES.fr;

describe('i18n tables', () => {
  it('have exactly the same keys in both languages', () => {
    expect(Object.keys(fr).sort()).toEqual(Object.keys(en).sort());
    expect(LANGS).toEqual(['en', 'fr']);
  });

  it('have no empty message', () => {
    for (const lang of LANGS) {
      for (const [key, text] of Object.entries(MESSAGES[lang])) {
        expect(text.trim(), `${lang} ${key}`).not.toBe('');
      }
    }
  });

  it('use the same placeholders in both languages', () => {
    for (const key of Object.keys(en) as MessageKey[]) {
      expect(placeholders(fr[key]), key).toEqual(placeholders(en[key]));
    }
  });

  it('are translated, not copied (except names, symbols and units)', () => {
    const same = (Object.keys(en) as MessageKey[]).filter((k) => en[k] === fr[k]);
    const allowed = new Set<MessageKey>([
      'app.name',
      'app.version',
      'nav.supervision',
      'role.admin',
      'severity.info',
      'sensor.zone',
      'sensor.position',
      'sensor.min',
      'sensor.max',
      'alarm.subjectSeries',
      'alarm.subjectSecurity',
      'bucket.1m',
      'bucket.5m',
      'bucket.15m',
      'gw.version',
      'sec.topic',
      'sec.seq',
      'rules.sumThreshold',
      'rules.field.zone',
      'sup.title',
      'common.actions',
      'alarm.occurrences',
      'alarm.zone',
      'rules.condition',
      'rules.field.kind',
      'agr.version',
      'agr.odrl',
    ]);
    expect(same.filter((k) => !allowed.has(k))).toEqual([]);
  });

  it('cover every value the code turns into a key', () => {
    const keys = new Set(Object.keys(en));
    const dynamic = [
      ...SEVERITIES.map((s) => `severity.${s}`),
      'severity.none',
      ...['open', 'acknowledged', 'cleared'].map((s) => `state.${s}`),
      ...SECURITY_EVENT_KINDS.map((k) => `secKind.${k}`),
      ...QUARANTINE_REASONS.map((r) => `reason.${r}`),
      ...GAP_REASONS.map((r) => `gap.${r}`),
      ...RULE_KINDS.map((k) => `kind.${k}`),
      ...COMPARISONS.map((o) => `op.${o}`),
      ...BUCKETS.map((b) => `bucket.${b.id}`),
      ...['connecting', 'connected', 'reconnecting', 'offline'].map((s) => `conn.${s}`),
      ...['viewer', 'operator', 'admin'].map((r) => `role.${r}`),
      ...['opened', 'repeated', 'acknowledged', 'cleared', 'updated'].map((c) => `ticker.${c}`),
      ...['online', 'offline', 'revoked'].map((s) => `gw.${s}`),
      ...PURPOSES.map((p) => `purpose.${p}`),
      ...ACTIONS.map((a) => `action.${a}`),
      ...FUNCTIONS.map((f) => `fn.${f}`),
      ...SPATIAL_LEVELS.map((l) => `level.${l}`),
      ...FIELDS.map((f) => `field.${f}`),
      ...AGREEMENT_STATES.map((s) => `agrState.${s}`),
      ...GRANTEE_KINDS.map((k) => `grantee.${k}`),
      ...DENY_REASONS.map((r) => `deny.${r}`),
      ...LIVE_REASONS.map((r) => `deny.${r}`),
      ...AUDIT_KINDS.map((k) => `auditKind.${k}`),
      ...SHARED_KINDS.map((k) => `gov.kind.${k}`),
      ...RANGES.map((r) => `gov.range.${r.id}`),
      ...['pending', 'expired'].map((v) => `agr.validity.${v}`),
      ...['idle', 'subscribing', 'live', 'denied', 'ended'].map((p) => `shared.live.${p}`),
      ...['altered', 'chain_broken', 'missing', 'out_of_order', 'foreign_tenant', 'checkpoint_forged', 'checkpoint_foreign', 'checkpoint_mismatch', 'truncated'].map(
        (p) => `verify.${p}`,
      ),
      ...['draft', 'active', 'suspended', 'revoked'].map((s) => `agrState.${s}`),
    ];
    expect(dynamic.filter((k) => !keys.has(k))).toEqual([]);
  });

  it('contain every key the sources use literally', () => {
    const sources = import.meta.glob<string>('../src/**/*.ts', { query: '?raw', import: 'default', eager: true });
    expect(Object.keys(sources).length).toBeGreaterThan(10);
    const used = new Set<string>();
    for (const text of Object.values(sources)) {
      for (const m of text.matchAll(/\bt(?:In)?\((?:lang, )?'([a-zA-Z0-9_.-]+)'/g)) if (m[1]) used.add(m[1]);
      for (const m of text.matchAll(/\b(?:tn\(|pluralKey\(lang, )'([a-zA-Z0-9_.-]+)'/g)) {
        if (m[1]) used.add(`${m[1]}.one`).add(`${m[1]}.other`);
      }
    }
    expect(used.size).toBeGreaterThan(100);
    expect([...used].filter((k) => !(k in en))).toEqual([]);
  });
});

describe('t', () => {
  it('interpolates and switches language', () => {
    setLang('en');
    expect(t('conn.retryIn', { s: 3 })).toBe('retry in 3 s');
    setLang('fr');
    expect(getLang()).toBe('fr');
    expect(t('conn.retryIn', { s: 3 })).toBe('nouvel essai dans 3 s');
    expect(tIn('en', 'conn.offline')).toBe('Offline');
    setLang('en');
  });

  it('leaves unknown placeholders as written', () => {
    expect(interpolate('{a} and {b}', { a: 1 })).toBe('1 and {b}');
    expect(interpolate('no params')).toBe('no params');
  });
});

describe('plurals', () => {
  it('choose the form by language rules', () => {
    setLang('en');
    expect(tn('sup.tileSensors', 1)).toBe('1 sensor');
    expect(tn('sup.tileSensors', 0)).toBe('0 sensors');
    expect(tn('sup.tileSensors', 2)).toBe('2 sensors');
    expect(tn('gw.gapSummary', 1, { readings: 300 })).toBe('1 gap · 300 readings lost');
    setLang('fr');
    expect(tn('sup.tileSensors', 0)).toBe('0 capteur');
    expect(tn('sup.tileSensors', 1)).toBe('1 capteur');
    expect(tn('sup.tileSensors', 2)).toBe('2 capteurs');
    expect(tn('nav.activeAlarms', 5)).toBe('5 alarmes actives');
    setLang('en');
  });

  it('come in pairs', () => {
    const keys = Object.keys(en);
    for (const k of keys.filter((x) => x.endsWith('.one'))) expect(keys).toContain(k.replace(/\.one$/, '.other'));
    for (const k of keys.filter((x) => x.endsWith('.other'))) expect(keys).toContain(k.replace(/\.other$/, '.one'));
    expect(pluralKey('en', 'rules.sumSensors', 1)).toBe('rules.sumSensors.one');
  });
});

describe('detectLang', () => {
  it('prefers the stored choice, then the browser, then English', () => {
    expect(detectLang(['fr-FR', 'en'], null)).toBe('fr');
    expect(detectLang(['de-DE', 'en-GB'], null)).toBe('en');
    expect(detectLang(['de-DE'], null)).toBe('en');
    expect(detectLang(['fr-CA'], 'en')).toBe('en');
    expect(detectLang(undefined, 'fr')).toBe('fr');
    expect(detectLang([], 'xx')).toBe('en');
  });
});
