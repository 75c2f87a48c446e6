// Labelled form controls with a help text and an error slot wired by `aria-describedby`, and
// groups of checkboxes in a fieldset; errors are shown (and the first invalid control
// focused) by `FieldErrors`.

import { h } from './dom';
import { uid } from './ui';

/** The error slots of a form, by field name. */
export class FieldErrors<K extends string> {
  private readonly slots = new Map<K, { err: HTMLElement; control: HTMLElement }>();

  /** A labelled control: label, control, optional help, error slot. */
  field(key: K, label: string, control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, help?: string): HTMLElement {
    const id = control.id || uid(`f-${key}`);
    control.id = id;
    const helpId = help ? `${id}-help` : null;
    const err = h('span', { class: 'field-error', id: `${id}-err` });
    this.slots.set(key, { err, control });
    control.setAttribute('aria-describedby', [helpId, err.id].filter(Boolean).join(' '));
    return h(
      'div',
      { class: 'field' },
      h('label', { for: id }, label),
      control,
      help ? h('span', { class: 'help', id: helpId ?? undefined }, help) : null,
      err,
    );
  }

  /** A fieldset of checkboxes, one per value; `testid` prefixes each box's test id. */
  checks<V extends string>(
    key: K,
    legend: string,
    values: readonly V[],
    current: readonly V[],
    label: (v: V) => string,
    testid: string,
    help?: string,
  ): HTMLFieldSetElement {
    const err = h('span', { class: 'field-error', id: uid(`f-${key}-err`) });
    const set = h(
      'fieldset',
      { class: 'check-group', 'aria-describedby': err.id, 'data-testid': testid },
      h('legend', null, legend),
      help ? h('p', { class: 'help' }, help) : null,
      h(
        'div',
        { class: 'checks' },
        ...values.map((v) => {
          const id = uid(`f-${key}`);
          return h(
            'span',
            { class: 'check' },
            h('input', { type: 'checkbox', id, value: v, checked: current.includes(v), 'data-testid': `${testid}-${v}` }),
            h('label', { for: id }, label(v)),
          );
        }),
      ),
      err,
    );
    this.slots.set(key, { err, control: set });
    return set;
  }

  /** Clears every error, then shows these (`null` field: the form's own message). */
  show(errors: readonly { field: K | null; text: string }[], general: HTMLElement): void {
    for (const { err, control } of this.slots.values()) {
      err.textContent = '';
      control.removeAttribute('aria-invalid');
    }
    const generalTexts: string[] = [];
    for (const e of errors) {
      const slot = e.field === null ? undefined : this.slots.get(e.field);
      if (!slot) {
        generalTexts.push(e.text);
        continue;
      }
      slot.err.textContent = slot.err.textContent ? `${slot.err.textContent} ${e.text}` : e.text;
      slot.control.setAttribute('aria-invalid', 'true');
    }
    general.textContent = errors.length ? generalTexts.join(' ') || errors.map((e) => e.text).join(' ') : '';
    const first = [...this.slots.values()].find((s) => s.control.getAttribute('aria-invalid') === 'true');
    const focusable = first?.control instanceof HTMLFieldSetElement ? first.control.querySelector('input') : first?.control;
    (focusable as HTMLElement | null | undefined)?.focus();
  }
}

/** The values of the ticked boxes of a `checks` fieldset. */
export function checked<V extends string>(set: HTMLElement): V[] {
  return [...set.querySelectorAll<HTMLInputElement>('input[type=checkbox]:checked')].map((i) => i.value as V);
}
