// One hierarchy for every failure the exporter reports. The state machine's Retry/Catch
// match on `name`, so each class sets it explicitly (minifiers keep string literals).

export class ExportError extends Error {
  override name = 'ExportError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The configuration file does not satisfy the schema; message names the key path. */
export class ConfigError extends ExportError {
  override name = 'ConfigError';
}

/** The configuration and the database catalog disagree (missing table/column, no key, …). */
export class SchemaMismatchError extends ExportError {
  override name = 'SchemaMismatchError';
}

/** A column type the exporter cannot represent exactly. */
export class UnsupportedTypeError extends ExportError {
  override name = 'UnsupportedTypeError';
}

/** A value that does not fit its lake type (numeric overflow, NaN in a decimal, …). */
export class ValueError extends ExportError {
  override name = 'ValueError';
}

/** Another execution holds the table's lease. */
export class WindowConflictError extends ExportError {
  override name = 'WindowConflictError';
}

/** The lake's state objects are not what the protocol allows. */
export class StateError extends ExportError {
  override name = 'StateError';
}

/** A transient fault of S3 or the database that outlasted the client's own retries. */
export class ThrottlingError extends ExportError {
  override name = 'ThrottlingError';
}

/** A data-quality check failed before publishing. */
export class CheckFailedError extends ExportError {
  override name = 'CheckFailedError';
}

/**
 * S3 answered throttling or a server error even after its client's own retries (read
 * structurally: the core does not import the SDK). Worth a later retry by the workflow.
 */
export function isTransientStoreError(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number }; code?: string };
  return e?.name === 'SlowDown' || e?.name === 'ThrottlingException' || (e?.$metadata?.httpStatusCode ?? 0) >= 500
    || ['ECONNRESET', 'ETIMEDOUT', 'EPIPE'].includes(e?.code ?? '');
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
