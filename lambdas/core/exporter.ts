// The export protocol's entry points: plan a window per table, export it page by page, commit
// it. The same functions run in the Lambdas (one step each), in the CLI and in the tests. Each
// step lives in its own module under protocol/ (README "How exactly-once works"):
//
//   protocol/run-model.ts      what travels between steps (deps, request, task, plan, result)
//   protocol/lease.ts          one execution per table at a time
//   protocol/plan.ts           tables, catalog check, clock, each table's window
//   protocol/export-pages.ts   keyset pages → journal → staged files, until done or the deadline
//   protocol/carry-history.ts  re-runs keep the history of the pages they replace
//   protocol/commit.ts         checks, publish, the watermark (the commit point)
//   protocol/recovery.ts       publish, roll forward after the commit point, remove what did not commit
export type { CommitResult, ExportDeps, LakeDeps, RunPlan, RunRequest, TableTask } from './protocol/run-model.ts';
export { newRunId } from './protocol/run-model.ts';
export { releaseLease } from './protocol/lease.ts';
export { abandonRun } from './protocol/recovery.ts';
export { planRun } from './protocol/plan.ts';
export { exportTable } from './protocol/export-pages.ts';
export { commitTable } from './protocol/commit.ts';
