// Alarm rules (`#/rules`): list, create, edit, enable/disable, delete. Changing rules needs the
// admin role; others see the list read-only. Server errors (problem+json `detail`) are shown
// next to the form. A threshold rule may also watch the sensors pooled to the tenant under
// one purpose (marked "pooled · <purpose>" in the list).

import { errorMessage, seg } from '../api';
import { hasRole, type Page } from '../context';
import { h, mount } from '../dom';
import { PURPOSES } from '../governanceTypes';
import { getLang, t } from '../i18n';
import {
  emptyForm,
  formToBody,
  ruleToForm,
  summarize,
  toggledBody,
  type FieldError,
  type RuleForm,
} from '../ruleForm';
import {
  COMPARISONS,
  GAP_REASONS,
  RULE_KINDS,
  SECURITY_EVENT_KINDS,
  SEVERITIES,
  type AlarmRule,
  type Items,
  type RuleCondition,
} from '../types';
import { emptyRow, errorBox, loadingBox, severityBadge, uid } from '../ui';

/** The choices of the pooled-sensors select: own sensors only, or also pooled for a purpose. */
const POOLED_CHOICES: readonly RuleForm['pooled'][] = ['', ...PURPOSES];

const pooledChoiceLabel = (p: RuleForm['pooled']): string =>
  p ? t('rules.field.pooledFor', { purpose: t(`purpose.${p}`) }) : t('rules.field.pooledOwn');

/** The "pooled · <purpose>" marker of a rule that also watches pooled sensors. */
function pooledMarker(c: RuleCondition): HTMLElement | null {
  if (c.kind !== 'threshold' || !c.pooled) return null;
  return h(
    'span',
    { class: 'pill pill-pooled', 'data-testid': 'rule-pooled-marker', 'data-purpose': c.pooled },
    t('rules.pooledMarker', { purpose: t(`purpose.${c.pooled}`) }),
  );
}

export const rulesPage: Page = (root, ctx) => {
  let disposed = false;
  const admin = hasRole(ctx.me, 'admin');
  let rules: AlarmRule[] = [];
  const tbody = h('tbody');
  const status = h('div');
  const notice = h('p', { class: 'notice', role: 'status', 'aria-live': 'polite' });
  const formHost = h('div');
  const newButton = admin
    ? h(
        'button',
        { type: 'button', class: 'btn', 'data-testid': 'rule-new', onclick: () => openForm(null) },
        t('rules.new'),
      )
    : null;

  mount(
    root,
    h('h1', { class: 'page-title', tabindex: -1 }, t('rules.title')),
    admin ? null : h('p', { class: 'notice notice-info', 'data-testid': 'rules-readonly' }, t('rules.readOnly')),
    h('div', { class: 'toolbar' }, newButton),
    notice,
    formHost,
    status,
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'data-table', 'data-testid': 'rules-table' },
        h('caption', { class: 'sr-only' }, t('rules.title')),
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            h('th', { scope: 'col' }, t('rules.name')),
            h('th', { scope: 'col' }, t('rules.severity')),
            h('th', { scope: 'col' }, t('rules.condition')),
            h('th', { scope: 'col' }, t('rules.enabled')),
            admin ? h('th', { scope: 'col' }, t('common.actions')) : null,
          ),
        ),
        tbody,
      ),
    ),
  );

  const renderList = (): void => {
    const lang = getLang();
    if (rules.length === 0) {
      mount(tbody, emptyRow(admin ? 5 : 4, t('rules.empty')));
      return;
    }
    mount(
      tbody,
      ...rules.map((rule) =>
        h(
          'tr',
          { 'data-testid': 'rule-row', 'data-rule-id': rule.id, 'data-enabled': String(rule.enabled) },
          h('th', { scope: 'row' }, rule.name, h('br'), h('code', { class: 'muted small' }, rule.id)),
          h('td', null, severityBadge(rule.severity)),
          h('td', null, summarize(rule.condition, lang), ' ', pooledMarker(rule.condition)),
          h(
            'td',
            null,
            admin
              ? h(
                  'button',
                  {
                    type: 'button',
                    class: `switch ${rule.enabled ? 'on' : 'off'}`,
                    role: 'switch',
                    'aria-checked': String(rule.enabled),
                    'aria-label': t(rule.enabled ? 'rules.disable' : 'rules.enable', { name: rule.name }),
                    'data-testid': 'rule-toggle',
                    onclick: () => void toggle(rule),
                  },
                  h('span', { class: 'switch-label' }, t(rule.enabled ? 'rules.on' : 'rules.off')),
                )
              : h('span', { class: `pill ${rule.enabled ? 'pill-online' : 'pill-offline'}` }, t(rule.enabled ? 'rules.on' : 'rules.off')),
          ),
          admin
            ? h(
                'td',
                { class: 'actions' },
                h(
                  'button',
                  {
                    type: 'button',
                    class: 'btn btn-small btn-secondary',
                    'data-testid': 'rule-edit',
                    'aria-label': t('rules.editRule', { name: rule.name }),
                    onclick: () => openForm(rule),
                  },
                  t('common.edit'),
                ),
                ' ',
                h(
                  'button',
                  {
                    type: 'button',
                    class: 'btn btn-small btn-danger',
                    'data-testid': 'rule-delete',
                    'aria-label': t('rules.deleteRule', { name: rule.name }),
                    onclick: () => void remove(rule),
                  },
                  t('common.delete'),
                ),
              )
            : null,
        ),
      ),
    );
  };

  const load = async (): Promise<void> => {
    mount(status, loadingBox());
    try {
      const resp = await ctx.api.get<Items<AlarmRule>>('/api/v1/alarm-rules');
      if (disposed) return;
      rules = [...resp.items].sort((a, b) => a.name.localeCompare(b.name, getLang()));
      mount(status);
      renderList();
    } catch (e) {
      if (disposed) return;
      mount(status, errorBox(e, () => void load()));
    }
  };

  const toggle = async (rule: AlarmRule): Promise<void> => {
    notice.textContent = '';
    try {
      await ctx.api.put<AlarmRule>(`/api/v1/alarm-rules/${seg(rule.id)}`, toggledBody(rule, !rule.enabled));
      await load();
      (tbody.querySelector(`tr[data-rule-id="${CSS.escape(rule.id)}"] [data-testid="rule-toggle"]`) as HTMLElement | null)?.focus();
    } catch (e) {
      notice.textContent = errorMessage(e);
    }
  };

  const remove = async (rule: AlarmRule): Promise<void> => {
    if (!window.confirm(t('rules.confirmDelete', { name: rule.name }))) return;
    notice.textContent = '';
    try {
      await ctx.api.delete(`/api/v1/alarm-rules/${seg(rule.id)}`);
      notice.textContent = t('rules.deleted', { name: rule.name });
      await load();
    } catch (e) {
      notice.textContent = errorMessage(e);
    }
  };

  // ---- the form ----
  const openForm = (rule: AlarmRule | null): void => {
    const creating = rule === null;
    const form: RuleForm = rule ? ruleToForm(rule) : emptyForm();
    const errorEl = h('div', { class: 'form-error', role: 'alert', 'data-testid': 'rule-error' });
    const fieldErrors = new Map<keyof RuleForm, HTMLElement>();

    const field = (
      key: keyof RuleForm,
      label: string,
      control: HTMLInputElement | HTMLSelectElement,
      help?: string,
    ): HTMLElement => {
      const id = control.id || uid(`rule-${key}`);
      control.id = id;
      const helpId = help ? `${id}-help` : null;
      const errId = `${id}-err`;
      const err = h('span', { class: 'field-error', id: errId });
      fieldErrors.set(key, err);
      control.setAttribute('aria-describedby', [helpId, errId].filter(Boolean).join(' '));
      return h(
        'div',
        { class: 'field' },
        h('label', { for: id }, label),
        control,
        help ? h('span', { class: 'help', id: helpId ?? undefined }, help) : null,
        err,
      );
    };
    const text = (key: keyof RuleForm, testid: string, attrs: Record<string, string | number | boolean> = {}): HTMLInputElement =>
      h('input', { type: 'text', value: String(form[key]), 'data-testid': testid, autocomplete: 'off', ...attrs });
    const select = <V extends string>(values: readonly V[], current: V, label: (v: V) => string, testid: string): HTMLSelectElement =>
      h('select', { 'data-testid': testid }, ...values.map((v) => h('option', { value: v, selected: v === current }, label(v))));
    const checks = <V extends string>(values: readonly V[], current: readonly V[], label: (v: V) => string, name: string): HTMLElement =>
      h(
        'div',
        { class: 'checks' },
        ...values.map((v) => {
          const id = uid(`rule-${name}`);
          return h(
            'span',
            { class: 'check' },
            h('input', { type: 'checkbox', id, value: v, checked: current.includes(v), 'data-testid': `rule-${name}-${v}`, name }),
            h('label', { for: id }, label(v)),
          );
        }),
      );

    const idInput = text('id', 'rule-id', creating ? { maxlength: 63, pattern: '[a-z0-9][a-z0-9-]{0,62}' } : { disabled: true });
    const nameInput = text('name', 'rule-name', { maxlength: 100, required: true });
    const severitySel = select(SEVERITIES, form.severity, (s) => t(`severity.${s}`), 'rule-severity');
    const enabledInput = h('input', { type: 'checkbox', checked: form.enabled, 'data-testid': 'rule-enabled', id: uid('rule-enabled') });
    const kindSel = select(RULE_KINDS, form.kind, (k) => t(`kind.${k}`), 'rule-kind');
    const metricInput = text('metric', 'rule-metric', { maxlength: 64, placeholder: 'air.pm25' });
    const registryZones = h('datalist', { id: uid('zones') });
    const zoneInput = text('zone', 'rule-zone', { list: registryZones.id, placeholder: t('rules.field.anyZone') });
    const sensorsInput = text('sensors', 'rule-sensors');
    const opSel = select(COMPARISONS, form.op, (o) => t(`op.${o}`), 'rule-op');
    const valueInput = text('value', 'rule-value', { inputmode: 'decimal', required: true });
    const forInput = text('forS', 'rule-for', { inputmode: 'numeric' });
    const pooledSel = select(POOLED_CHOICES, form.pooled, pooledChoiceLabel, 'rule-pooled');
    const afterInput = text('afterS', 'rule-after', { inputmode: 'numeric' });
    const noticeInput = text('noticeDays', 'rule-notice', { inputmode: 'decimal' });
    const gatewaysInput = text('gateways', 'rule-gateways');
    const reasons = checks(GAP_REASONS, form.reasons, (r) => t(`gap.${r}`), 'reasons');
    const events = checks(SECURITY_EVENT_KINDS, form.events, (k) => t(`secKind.${k}`), 'events');

    ctx
      .registry()
      .then((reg) => mount(registryZones, ...reg.zones.map((z) => h('option', { value: z.id }, z.name))))
      .catch(() => undefined);

    const groups: Record<RuleForm['kind'], HTMLElement> = {
      threshold: h(
        'fieldset',
        { class: 'kind-fields' },
        h('legend', null, t('kind.threshold')),
        field('metric', t('rules.field.metric'), metricInput, t('rules.field.metricHelp')),
        field('op', t('rules.field.op'), opSel),
        field('value', t('rules.field.value'), valueInput),
        field('forS', t('rules.field.for'), forInput),
        field('zone', t('rules.field.zone'), zoneInput),
        field('sensors', t('rules.field.sensors'), sensorsInput, t('rules.field.listHelp')),
        field('pooled', t('rules.field.pooled'), pooledSel, t('rules.field.pooledHelp')),
        registryZones,
      ),
      gateway_offline: h(
        'fieldset',
        { class: 'kind-fields' },
        h('legend', null, t('kind.gateway_offline')),
        field('afterS', t('rules.field.after'), afterInput),
      ),
      spool_gap: h('fieldset', { class: 'kind-fields' }, h('legend', null, t('rules.field.reasons')), reasons),
      certificate_expiry: h(
        'fieldset',
        { class: 'kind-fields' },
        h('legend', null, t('kind.certificate_expiry')),
        field('noticeDays', t('rules.field.notice'), noticeInput, t('rules.field.noticeHelp')),
      ),
      security: h('fieldset', { class: 'kind-fields' }, h('legend', null, t('rules.field.events')), events),
    };
    // Both gateway rules may be limited to some gateways: one field, shown for either.
    const gatewaysField = field('gateways', t('rules.field.gateways'), gatewaysInput, t('rules.field.listHelp'));
    const showKind = (): void => {
      for (const [kind, el] of Object.entries(groups)) el.hidden = kind !== kindSel.value;
      gatewaysField.hidden = kindSel.value !== 'gateway_offline' && kindSel.value !== 'certificate_expiry';
    };
    kindSel.addEventListener('change', showKind);
    showKind();

    const save = h('button', { type: 'submit', class: 'btn', 'data-testid': 'rule-save' }, t('common.save'));
    const titleId = uid('rule-form-title');
    const formEl = h(
      'form',
      { class: 'panel rule-form', 'aria-labelledby': titleId, novalidate: true, 'data-testid': 'rule-form' },
      h('h2', { id: titleId }, creating ? t('rules.formNew') : t('rules.formEdit', { id: rule.id })),
      h(
        'div',
        { class: 'form-grid' },
        creating ? field('id', t('rules.field.id'), idInput, t('rules.field.idHelp')) : null,
        field('name', t('rules.field.name'), nameInput),
        field('severity', t('rules.field.severity'), severitySel),
        h(
          'div',
          { class: 'field field-check' },
          enabledInput,
          h('label', { for: enabledInput.id }, t('rules.field.enabled')),
        ),
        field('kind', t('rules.field.kind'), kindSel),
      ),
      ...Object.values(groups),
      h('div', { class: 'kind-fields' }, gatewaysField),
      errorEl,
      h(
        'div',
        { class: 'form-buttons' },
        save,
        h('button', { type: 'button', class: 'btn btn-ghost', 'data-testid': 'rule-cancel', onclick: () => closeForm() }, t('common.cancel')),
      ),
    );

    const read = (): RuleForm => ({
      id: idInput.value,
      name: nameInput.value,
      severity: severitySel.value as RuleForm['severity'],
      enabled: enabledInput.checked,
      kind: kindSel.value as RuleForm['kind'],
      metric: metricInput.value,
      zone: zoneInput.value,
      sensors: sensorsInput.value,
      op: opSel.value as RuleForm['op'],
      value: valueInput.value,
      forS: forInput.value,
      pooled: pooledSel.value as RuleForm['pooled'],
      afterS: afterInput.value,
      noticeDays: noticeInput.value,
      gateways: gatewaysInput.value,
      reasons: [...reasons.querySelectorAll<HTMLInputElement>('input:checked')].map((i) => i.value as RuleForm['reasons'][number]),
      events: [...events.querySelectorAll<HTMLInputElement>('input:checked')].map((i) => i.value as RuleForm['events'][number]),
    });

    const showErrors = (errors: FieldError[]): void => {
      for (const el of fieldErrors.values()) el.textContent = '';
      formEl.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
      for (const e of errors) {
        const el = fieldErrors.get(e.field);
        if (el) el.textContent = t(e.key, e.params);
        const control = el?.parentElement?.querySelector('input, select');
        control?.setAttribute('aria-invalid', 'true');
      }
      errorEl.textContent = errors.map((e) => t(e.key, e.params)).join(' ');
      (formEl.querySelector('[aria-invalid="true"]') as HTMLElement | null)?.focus();
    };

    formEl.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void (async () => {
        const result = formToBody(read(), creating);
        if (!result.ok) {
          showErrors(result.errors);
          return;
        }
        showErrors([]);
        save.disabled = true;
        try {
          const saved = creating
            ? await ctx.api.post<AlarmRule>('/api/v1/alarm-rules', result.body)
            : await ctx.api.put<AlarmRule>(`/api/v1/alarm-rules/${seg(rule.id)}`, result.body);
          if (disposed) return;
          closeForm();
          notice.textContent = t('rules.saved', { name: saved?.name ?? result.body.name });
          await load();
        } catch (e) {
          errorEl.textContent = errorMessage(e);
        } finally {
          save.disabled = false;
        }
      })();
    });
    formEl.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') closeForm();
    });

    mount(formHost, formEl);
    (creating ? idInput : nameInput).focus();
  };

  const closeForm = (): void => {
    mount(formHost);
    newButton?.focus();
  };

  void load();
  return () => {
    disposed = true;
  };
};
