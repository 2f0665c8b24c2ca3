export * from './export-alarms.ts';
export * from './export-schedule.ts';
export * from './export-workflow.ts';
export * from './lake-bucket.ts';
export * from './lake-catalog.ts';
export * from './lambda-factory.ts';
export * from './pg-lake-export-stack.ts';
export * from './prop-problems.ts';
