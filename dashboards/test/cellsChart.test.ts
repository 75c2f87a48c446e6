import { describe, expect, it } from 'vitest';

import { cellsSeries } from '../src/cellsChart';
import type { SharedCells } from '../src/governanceTypes';

const answer: SharedCells = {
  grantor: 'lyon',
  agreement: { id: 'air-open', version: 2 },
  purpose: 'research',
  from: '2026-12-04T08:00:00.000000Z',
  to: '2026-12-04T10:00:00.000000Z',
  bucket_s: 3600,
  level: 'zone',
  functions: ['max', 'avg'],
  k: 3,
  cells: [
    { metric: 'air.no2', bucket: '2026-12-04T09:00:00.000000Z', unit: 'north', suppressed: false, values: { avg: 12, max: 20 } },
    { metric: 'air.no2', bucket: '2026-12-04T08:00:00.000000Z', unit: 'north', suppressed: false, values: { avg: 10, max: 15 } },
    { metric: 'air.no2', bucket: '2026-12-04T08:00:00.000000Z', unit: 'centre', suppressed: true },
    { metric: 'air.no2', bucket: '2026-12-04T09:00:00.000000Z', unit: 'centre', suppressed: false, values: { avg: 7, max: 9 } },
    { metric: 'noise.laeq', bucket: '2026-12-04T09:00:00.000000Z', unit: 'north', suppressed: false, values: { avg: 50 } },
  ],
  totals: [],
  suppressed: { cells: 1, totals: 0 },
};

describe('shared cells chart', () => {
  it('draws one line per unit of one metric; suppressed cells are gaps', () => {
    const t8 = Date.parse('2026-12-04T08:00:00Z') / 1000;
    expect(cellsSeries(answer)).toEqual({
      metric: 'air.no2',
      fn: 'avg',
      xs: [t8, t8 + 3600],
      units: ['centre', 'north'],
      ys: [
        [null, 7],
        [10, 12],
      ],
    });
    expect(cellsSeries(answer, 'noise.laeq')?.ys).toEqual([[50]]);
    expect(cellsSeries({ ...answer, cells: [] })).toBeNull();
  });
});
