// "Preview as grantee": the grantor asks what the agreement's grantee would get for a query
// (purpose, metric, time range; for aggregates the bucket, functions and spatial level) and
// sees exactly the answer of `/api/v1/agreements/{id}/preview/{readings|aggregates}` — the
// same governed read, audited as a preview — or the denial with its reason.

import { seg } from '../api';
import { secondsToText } from '../agreementForm';
import type { Ctx } from '../context';
import { h, mount } from '../dom';
import { deniedBox, governedView, type GovernedAnswer } from '../governedTables';
import type { AgreementRecord } from '../governanceTypes';
import { t } from '../i18n';
import { previewQuery } from '../sharedQuery';
import { loadingBox, uid } from '../ui';
import { readForm } from './readForm';

export function agreementPreview(ctx: Ctx, record: AgreementRecord, close: () => void): HTMLElement {
  const a = record.agreement;
  const controls = readForm({
    kinds: ['readings', 'aggregates'],
    kind: a.action === 'read_raw' ? 'readings' : 'aggregates',
    purposes: a.purposes,
    metric: a.target.metrics[0] ?? '*',
    bucket: a.min_bucket_s === undefined ? '1h' : secondsToText(a.min_bucket_s),
    level: a.spatial_level,
    functions: a.functions,
    testid: 'preview',
  });
  const result = h('div', { 'data-testid': 'preview-result', 'aria-live': 'polite' });
  const run = h('button', { type: 'submit', class: 'btn', 'data-testid': 'preview-run' }, t('gov.previewRun'));
  const titleId = uid('preview-title');
  const formEl = h(
    'form',
    { class: 'panel preview', 'aria-labelledby': titleId, novalidate: true, 'data-testid': 'preview-panel' },
    h('h2', { id: titleId }, t('gov.previewTitle', { id: a.id, grantee: a.grantee })),
    h('p', { class: 'muted' }, t('gov.previewIntro')),
    controls.controls,
    controls.general,
    h(
      'div',
      { class: 'form-buttons' },
      run,
      h('button', { type: 'button', class: 'btn btn-ghost', 'data-testid': 'preview-close', onclick: () => close() }, t('common.close')),
    ),
    result,
  );

  formEl.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const spec = controls.read();
    const q = previewQuery(spec, ctx.clock.now());
    if (!q.ok) {
      controls.showError(q);
      return;
    }
    controls.showError(null);
    run.disabled = true;
    mount(result, loadingBox());
    void ctx.api
      .get<GovernedAnswer>(`/api/v1/agreements/${seg(a.id)}/preview/${spec.kind}`, q.query)
      .then((answer) => mount(result, governedView(answer)))
      .catch((e: unknown) => mount(result, deniedBox(e)))
      .finally(() => {
        run.disabled = false;
      });
  });
  formEl.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') close();
  });
  return formEl;
}
