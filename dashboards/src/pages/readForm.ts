// The controls of a governed read, shared by the grantor's preview and the grantee's
// "Shared with me" page: what to read (sensors, readings or aggregates), purpose, metric
// patterns, time range, and for aggregates the bucket, spatial level and functions.

import { h, mount } from '../dom';
import { checked, FieldErrors } from '../formFields';
import { FUNCTIONS, SPATIAL_LEVELS, type AggFunction, type Purpose, type SpatialLevel } from '../governanceTypes';
import { t } from '../i18n';
import { RANGES, type ReadQuery, type ReadSpec, type SharedKind } from '../sharedQuery';

export type ReadField = 'kind' | 'purpose' | 'metric' | 'range' | 'bucket' | 'level' | 'functions';

export interface ReadDefaults {
  kinds: readonly SharedKind[];
  kind: SharedKind;
  purposes: readonly Purpose[];
  metric: string;
  bucket: string;
  level: SpatialLevel;
  functions: readonly AggFunction[];
  /** Prefix of the controls' test ids (`preview`, `shared`). */
  testid: string;
}

export interface ReadForm {
  /** The controls, in a grid, then the aggregate-only ones. */
  controls: HTMLElement;
  /** The form's own error line. */
  general: HTMLElement;
  read(): Omit<ReadSpec, 'agreement'>;
  /** Replaces the purposes offered (keeps the choice when still offered). */
  setPurposes(purposes: readonly Purpose[]): void;
  showError(q: Extract<ReadQuery, { ok: false }> | null): void;
}

export function readForm(d: ReadDefaults): ReadForm {
  const errors = new FieldErrors<ReadField>();
  const general = h('div', { class: 'form-error', role: 'alert', 'data-testid': `${d.testid}-error` });
  const kindSel = h(
    'select',
    { 'data-testid': `${d.testid}-kind` },
    ...d.kinds.map((k) => h('option', { value: k, selected: k === d.kind }, t(`gov.kind.${k}`))),
  );
  const purposeSel = h('select', { 'data-testid': `${d.testid}-purpose` });
  const setPurposes = (purposes: readonly Purpose[]): void => {
    const current = purposeSel.value;
    mount(purposeSel, ...purposes.map((p) => h('option', { value: p, selected: p === current }, t(`purpose.${p}`))));
  };
  setPurposes(d.purposes);
  const metricInput = h('input', { type: 'text', value: d.metric, 'data-testid': `${d.testid}-metric`, autocomplete: 'off' });
  const rangeSel = h('select', { 'data-testid': `${d.testid}-range` }, ...RANGES.map((r) => h('option', { value: r.id }, t(`gov.range.${r.id}`))));
  const bucketInput = h('input', { type: 'text', value: d.bucket, 'data-testid': `${d.testid}-bucket`, autocomplete: 'off' });
  const levelSel = h(
    'select',
    { 'data-testid': `${d.testid}-level` },
    ...SPATIAL_LEVELS.map((l) => h('option', { value: l, selected: l === d.level }, t(`level.${l}`))),
  );
  const functions = errors.checks('functions', t('agr.field.functions'), FUNCTIONS, d.functions, (f) => t(`fn.${f}`), `${d.testid}-functions`);
  const metricField = errors.field('metric', t('gov.metric'), metricInput, t('agr.field.metricsHelp'));
  const rangeField = errors.field('range', t('gov.range'), rangeSel);
  const aggregateOnly = h(
    'div',
    null,
    h(
      'div',
      { class: 'form-grid' },
      errors.field('bucket', t('gov.bucketWidth'), bucketInput, t('agr.field.durationHelp')),
      errors.field('level', t('agr.field.level'), levelSel),
    ),
    functions,
  );
  const sync = (): void => {
    aggregateOnly.hidden = kindSel.value !== 'aggregates';
    metricField.hidden = kindSel.value === 'sensors';
    rangeField.hidden = kindSel.value === 'sensors';
  };
  kindSel.addEventListener('change', sync);
  sync();
  const controls = h(
    'div',
    { class: 'read-controls' },
    h(
      'div',
      { class: 'form-grid' },
      errors.field('kind', t('gov.kind'), kindSel),
      errors.field('purpose', t('gov.purpose'), purposeSel),
      metricField,
      rangeField,
    ),
    aggregateOnly,
  );
  return {
    controls,
    general,
    read: () => ({
      kind: kindSel.value as SharedKind,
      purpose: purposeSel.value,
      metric: metricInput.value,
      range: rangeSel.value,
      bucket: bucketInput.value,
      level: levelSel.value,
      functions: checked<AggFunction>(functions),
    }),
    setPurposes,
    showError: (q) => errors.show(q ? [{ field: q.field, text: t(q.key, q.params) }] : [], general),
  };
}
