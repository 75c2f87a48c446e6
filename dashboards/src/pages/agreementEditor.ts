// The create/edit form of a sharing agreement (admin), every term of the model: grantee,
// target, action, minimum bucket, functions, k, spatial level, pseudonymisation, embargo,
// purposes, validity window (UTC) and raw fields. Validated in the browser as the server
// does; a refusal of the server is shown next to the fields it names. Editing sends the
// version it is based on as `If-Match` (409 when someone changed it meanwhile).

import { ApiError, errorMessage, seg } from '../api';
import {
  agreementToForm,
  emptyAgreementForm,
  formToAgreement,
  serverFieldErrors,
  type AgreementForm,
} from '../agreementForm';
import type { Ctx } from '../context';
import { h } from '../dom';
import { checked, FieldErrors } from '../formFields';
import {
  ACTIONS,
  FIELDS,
  FUNCTIONS,
  GRANTEE_KINDS,
  PURPOSES,
  SPATIAL_LEVELS,
  type AgreementRecord,
  type Partner,
} from '../governanceTypes';
import { t, tn } from '../i18n';
import type { Items } from '../types';
import { uid } from '../ui';

export interface EditorHooks {
  saved(record: AgreementRecord): void;
  cancelled(): void;
}

/** The form element for a new agreement (`record` null) or an edit of `record`. */
export function agreementEditor(ctx: Ctx, record: AgreementRecord | null, hooks: EditorHooks): HTMLFormElement {
  const creating = record === null;
  const form: AgreementForm = record ? agreementToForm(record.agreement) : emptyAgreementForm(ctx.clock.now());
  const errors = new FieldErrors<keyof AgreementForm>();
  const general = h('div', { class: 'form-error', role: 'alert', 'data-testid': 'agr-error' });

  const text = (value: string, testid: string, attrs: Record<string, string | number | boolean> = {}): HTMLInputElement =>
    h('input', { type: 'text', value, 'data-testid': testid, autocomplete: 'off', ...attrs });
  const select = <V extends string>(values: readonly V[], current: V, label: (v: V) => string, testid: string): HTMLSelectElement =>
    h('select', { 'data-testid': testid }, ...values.map((v) => h('option', { value: v, selected: v === current }, label(v))));

  const idInput = text(form.id, 'agr-id', creating ? { maxlength: 63, required: true } : { disabled: true });
  const kindSel = select(GRANTEE_KINDS, form.granteeKind, (k) => t(`grantee.${k}`), 'agr-grantee-kind');
  const partners = h('datalist', { id: uid('partners') });
  const granteeInput = text(form.granteeId, 'agr-grantee-id', { maxlength: 63, list: partners.id });
  const metricsInput = text(form.metrics, 'agr-metrics', { placeholder: 'air.*, noise.laeq' });
  const zonesInput = text(form.zones, 'agr-zones');
  const tagsInput = text(form.tags, 'agr-tags');
  const sensorsInput = text(form.sensors, 'agr-sensors');
  const poolingInput = h('input', { type: 'checkbox', checked: form.pooling, 'data-testid': 'agr-pooling', id: uid('agr-pooling') });
  const territoriesInput = text(form.territories, 'agr-territories');
  const actionSel = select(ACTIONS, form.action, (a) => t(`action.${a}`), 'agr-action');
  const bucketInput = text(form.minBucket, 'agr-min-bucket', { placeholder: '1h' });
  const functions = errors.checks('functions', t('agr.field.functions'), FUNCTIONS, form.functions, (f) => t(`fn.${f}`), 'agr-functions');
  const kInput = text(form.k, 'agr-k', { inputmode: 'numeric' });
  const levelSel = select(SPATIAL_LEVELS, form.spatialLevel, (l) => t(`level.${l}`), 'agr-level');
  const pseudoInput = h('input', { type: 'checkbox', checked: form.pseudonymise, 'data-testid': 'agr-pseudonymise', id: uid('agr-pseudo') });
  const embargoInput = text(form.embargo, 'agr-embargo', { placeholder: '0' });
  const purposes = errors.checks('purposes', t('agr.field.purposes'), PURPOSES, form.purposes, (p) => t(`purpose.${p}`), 'agr-purposes');
  const notBeforeInput = h('input', { type: 'datetime-local', value: form.notBefore, 'data-testid': 'agr-not-before' });
  const notAfterInput = h('input', { type: 'datetime-local', value: form.notAfter, 'data-testid': 'agr-not-after' });
  const fields = errors.checks('fields', t('agr.field.fields'), FIELDS, form.fields, (f) => t(`field.${f}`), 'agr-fields', t('agr.field.fieldsHelp'));

  if (ctx.me.scope === 'tenant') {
    ctx.api
      .get<Items<Partner>>('/api/v1/partners')
      .then((list) => partners.replaceChildren(...list.items.map((p) => h('option', { value: p.id }, p.name))))
      .catch(() => undefined);
  }

  const granteeField = errors.field('granteeId', t('agr.field.granteeId'), granteeInput, t('agr.field.granteeHelp'));
  const territoriesField = errors.field('territories', t('agr.field.territories'), territoriesInput, t('agr.field.territoriesHelp'));
  const poolingHelpId = uid('agr-pooling-help');
  poolingInput.setAttribute('aria-describedby', poolingHelpId);
  const bucketField = errors.field('minBucket', t('agr.field.minBucket'), bucketInput, t('agr.field.durationHelp'));
  const sync = (): void => {
    granteeField.hidden = kindSel.value === 'public';
    fields.hidden = actionSel.value !== 'read_raw';
    territoriesField.hidden = !poolingInput.checked;
  };
  kindSel.addEventListener('change', sync);
  poolingInput.addEventListener('change', sync);
  actionSel.addEventListener('change', sync);
  sync();

  const save = h('button', { type: 'submit', class: 'btn', 'data-testid': 'agr-save' }, t('common.save'));
  const titleId = uid('agr-form-title');
  const pseudoHelpId = uid('agr-pseudo-help');
  pseudoInput.setAttribute('aria-describedby', pseudoHelpId);
  const formEl = h(
    'form',
    { class: 'panel agreement-form', 'aria-labelledby': titleId, novalidate: true, 'data-testid': 'agr-form' },
    h('h2', { id: titleId }, creating ? t('agr.formNew') : t('agr.formEdit', { id: record.agreement.id, version: record.agreement.version })),
    h(
      'fieldset',
      { class: 'form-section' },
      h('legend', null, t('agr.section.who')),
      h(
        'div',
        { class: 'form-grid' },
        errors.field('id', t('agr.field.id'), idInput, creating ? t('agr.field.idHelp') : undefined),
        errors.field('granteeKind', t('agr.field.granteeKind'), kindSel),
        granteeField,
        partners,
      ),
      purposes,
      h(
        'div',
        { class: 'form-grid' },
        errors.field('notBefore', t('agr.field.notBefore'), notBeforeInput),
        errors.field('notAfter', t('agr.field.notAfter'), notAfterInput),
      ),
    ),
    h(
      'fieldset',
      { class: 'form-section' },
      h('legend', null, t('agr.section.what')),
      h(
        'div',
        { class: 'form-grid' },
        errors.field('metrics', t('agr.field.metrics'), metricsInput, t('agr.field.metricsHelp')),
        errors.field('zones', t('agr.field.zones'), zonesInput, t('agr.field.listHelp')),
        errors.field('tags', t('agr.field.tags'), tagsInput, t('agr.field.listHelp')),
        errors.field('sensors', t('agr.field.sensors'), sensorsInput, t('agr.field.listHelp')),
        h(
          'div',
          { class: 'field' },
          h('span', { class: 'check-row' }, poolingInput, h('label', { for: poolingInput.id }, t('agr.field.pooling'))),
          h('span', { class: 'help', id: poolingHelpId }, t('agr.field.poolingHelp')),
        ),
        territoriesField,
      ),
    ),
    h(
      'fieldset',
      { class: 'form-section' },
      h('legend', null, t('agr.section.how')),
      h(
        'div',
        { class: 'form-grid' },
        errors.field('action', t('agr.field.action'), actionSel),
        bucketField,
        errors.field('k', t('agr.field.k'), kInput, t('agr.field.kHelp')),
        errors.field('spatialLevel', t('agr.field.level'), levelSel),
        errors.field('embargo', t('agr.field.embargo'), embargoInput, t('agr.field.durationHelp')),
        h(
          'div',
          { class: 'field' },
          h('span', { class: 'check-row' }, pseudoInput, h('label', { for: pseudoInput.id }, t('agr.field.pseudonymise'))),
          h('span', { class: 'help', id: pseudoHelpId }, t('agr.field.pseudonymiseHelp')),
        ),
      ),
      functions,
      fields,
    ),
    form.prohibitions.length ? h('p', { class: 'notice notice-info' }, tn('agr.prohibitionsKept', form.prohibitions.length)) : null,
    general,
    h(
      'div',
      { class: 'form-buttons' },
      save,
      h('button', { type: 'button', class: 'btn btn-ghost', 'data-testid': 'agr-cancel', onclick: () => hooks.cancelled() }, t('common.cancel')),
    ),
  );

  const read = (): AgreementForm => ({
    id: idInput.value,
    granteeKind: kindSel.value as AgreementForm['granteeKind'],
    granteeId: granteeInput.value,
    metrics: metricsInput.value,
    zones: zonesInput.value,
    tags: tagsInput.value,
    sensors: sensorsInput.value,
    pooling: poolingInput.checked,
    territories: territoriesInput.value,
    action: actionSel.value as AgreementForm['action'],
    minBucket: bucketInput.value,
    functions: checked(functions),
    k: kInput.value,
    spatialLevel: levelSel.value as AgreementForm['spatialLevel'],
    pseudonymise: pseudoInput.checked,
    embargo: embargoInput.value,
    purposes: checked(purposes),
    notBefore: notBeforeInput.value,
    notAfter: notAfterInput.value,
    fields: checked(fields),
    prohibitions: form.prohibitions,
  });

  formEl.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void (async () => {
      const result = formToAgreement(read());
      if (!result.ok) {
        errors.show(result.errors.map((e) => ({ field: e.field, text: t(e.key, e.params) })), general);
        return;
      }
      errors.show([], general);
      save.disabled = true;
      try {
        const saved = creating
          ? await ctx.api.post<AgreementRecord>('/api/v1/agreements', result.body)
          : await ctx.api.put<AgreementRecord>(`/api/v1/agreements/${seg(record.agreement.id)}`, result.body, {
              'If-Match': `"${record.agreement.version}"`,
            });
        hooks.saved(saved);
      } catch (e) {
        if (e instanceof ApiError && e.status === 400) {
          errors.show(serverFieldErrors(e.detail).map((x) => ({ field: x.field, text: x.message })), general);
        } else if (e instanceof ApiError && e.status === 409) {
          general.textContent = t('agr.conflict', { detail: e.detail });
        } else {
          general.textContent = errorMessage(e);
        }
      } finally {
        save.disabled = false;
      }
    })();
  });
  formEl.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') hooks.cancelled();
  });
  return formEl;
}
