// Breaker HH — failed on the product as of 1bae0f2 (fixed since): the
// projection's years were computed by spreading one year per published file into Math.min/max
// (lake/keys.ts projectionYears, called by protocol/commit.ts with every file of the run). Node
// throws RangeError (Maximum call stack size exceeded) from about 125,000 arguments, so a run of
// more files — a table partitioned by a business date whose updated rows spread over a few years
// of days gives ~1,000 files a 50,000-row page (MAX_OPEN_FILES ends each chunk) — can never commit.
import { expect, it } from 'vitest';
import { projectionYears } from '../../lambdas/core/lake/keys.ts';

it('computes the projection of a run with 300,000 files', () => {
  const written = Array.from({ length: 300_000 }, (_, i) => 1990 + (i % 40));
  expect(projectionYears({ from: 2000, to: 2026 }, written, 2025)).toEqual({ from: 1990, to: 2029 });
});
