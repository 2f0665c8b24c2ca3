import { describe, expect, it } from 'vitest';
import {
  CheckFailedError, ConfigError, ExportError, SchemaMismatchError, StateError, TERMINAL_ERROR_NAMES, ThrottlingError,
  UnsupportedTypeError, ValueError, WindowConflictError, isTerminal, reviveError,
} from '../../lambdas/core/errors.ts';
import { TERMINAL_ERRORS } from '../../lib/export-workflow.ts';

const ALL = [ExportError, ConfigError, SchemaMismatchError, UnsupportedTypeError, ValueError, WindowConflictError, StateError, ThrottlingError, CheckFailedError];

describe('the error registry', () => {
  it('names the errors a retry cannot fix, and the workflow matches exactly those', () => {
    expect(TERMINAL_ERROR_NAMES).toEqual(['ConfigError', 'SchemaMismatchError', 'UnsupportedTypeError', 'ValueError', 'CheckFailedError', 'WindowConflictError']);
    expect(TERMINAL_ERRORS).toBe(TERMINAL_ERROR_NAMES);
  });

  it('tells terminal from retryable errors, by class or by a name read back', () => {
    expect(isTerminal(new ValueError('public.orders.amount: overflow'))).toBe(true);
    expect(isTerminal(new WindowConflictError('held'))).toBe(true);
    expect(isTerminal(new ThrottlingError('S3 503'))).toBe(false);
    expect(isTerminal(new StateError('bad manifest'))).toBe(false);
    expect(isTerminal(new ExportError('page 3 failed'))).toBe(false);
    expect(isTerminal({ name: 'SchemaMismatchError' })).toBe(true);
    expect(isTerminal(new Error('plain'))).toBe(false);
    expect(isTerminal(null)).toBe(false);
    expect(isTerminal('ConfigError')).toBe(false);
  });

  it('revives every named error with its class, message and stack', () => {
    for (const ErrorClass of ALL) {
      const original = new ErrorClass(`public.orders: ${ErrorClass.name}`);
      const revived = reviveError({ name: original.name, message: original.message, stack: original.stack });
      expect(revived).toBeInstanceOf(ErrorClass);
      expect(revived).toBeInstanceOf(ExportError);
      expect(revived.name).toBe(original.name);
      expect(revived.message).toBe(original.message);
      expect(revived.stack).toBe(original.stack);
    }
  });

  it('keeps the name of an error it does not know (a RangeError, a wasm panic)', () => {
    const revived = reviveError({ name: 'RangeError', message: 'Array buffer allocation failed' });
    expect(revived).not.toBeInstanceOf(ExportError);
    expect(revived.name).toBe('RangeError');
    expect(revived.message).toBe('Array buffer allocation failed');
    expect(isTerminal(revived)).toBe(false);
  });
});
