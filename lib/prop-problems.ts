// Construct props are validated before anything is created, and every problem is reported at
// once (one synth tells the user everything to fix), each naming the prop and the bad value.

export class PropProblems {
  readonly #owner: string;
  readonly #problems: string[] = [];

  constructor(owner: string) {
    this.#owner = owner;
  }

  /** Records `prop: message (got value)` unless `ok`. */
  check(ok: boolean, prop: string, message: string, value?: unknown): void {
    if (ok) return;
    const got = value === undefined ? '' : ` (got ${JSON.stringify(value)})`;
    this.#problems.push(`${prop}: ${message}${got}`);
  }

  /** Throws one error listing every recorded problem. */
  throwIfAny(): void {
    if (this.#problems.length === 0) return;
    throw new Error(`${this.#owner}: ${this.#problems.length} invalid prop(s):\n  - ${this.#problems.join('\n  - ')}`);
  }
}

export function isPositiveInteger(value: number): boolean {
  return Number.isInteger(value) && value > 0;
}
