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

/** Every named error: the one list that the registry below, the revive map and the workflow derive from. */
const NAMED_ERRORS = [
  ExportError, ConfigError, SchemaMismatchError, UnsupportedTypeError, ValueError, WindowConflictError, StateError, ThrottlingError, CheckFailedError,
] as const;

/**
 * Errors that a retry cannot fix: the same input fails the same way. The workflow fails the
 * table at once (no Retry), so the run ends failed without waiting out the retries.
 */
const TERMINAL = new Set<(typeof NAMED_ERRORS)[number]>([ConfigError, SchemaMismatchError, UnsupportedTypeError, ValueError, CheckFailedError, WindowConflictError]);

/** The `name` each class sets (the field initializer is the only place the string is written). */
const nameOf = (ErrorClass: (typeof NAMED_ERRORS)[number]): string => new ErrorClass('').name;

const BY_NAME = new Map<string, (typeof NAMED_ERRORS)[number]>(NAMED_ERRORS.map((ErrorClass) => [nameOf(ErrorClass), ErrorClass]));

/** Names of the terminal errors, as the state machine's Retry/Catch match them. */
export const TERMINAL_ERROR_NAMES: readonly string[] = [...TERMINAL].map(nameOf);

/** The error is one a retry cannot fix (its class, or its name read back from elsewhere, is terminal). */
export function isTerminal(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === 'string' && TERMINAL_ERROR_NAMES.includes(name);
}

/**
 * An error rebuilt from its parts (sent across a worker thread): a named exporter error gets its
 * class back, so `instanceof` and the Retry/Catch matching keep working; any other keeps its name.
 */
export function reviveError(error: { readonly name: string; readonly message: string; readonly stack?: string }): Error {
  const ErrorClass = BY_NAME.get(error.name);
  const revived = ErrorClass ? new ErrorClass(error.message) : Object.assign(new Error(error.message), { name: error.name });
  if (error.stack) revived.stack = error.stack;
  return revived;
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
