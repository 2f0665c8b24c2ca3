// The state machine definition exactly as `cdk synth` emits it, made runnable offline (the local
// workflow runner, the demo, the e2e and infra tests): the
// DefinitionString's Fn::Join is joined with every Fn::GetAtt / Ref replaced by a fake but
// well-formed ARN, so aws-local-stepfunctions can validate and run it (with local task handlers
// keyed by state name).
import type { Template } from 'aws-cdk-lib/assertions';

export interface ResolveOptions {
  /** @default 'us-east-1' */
  readonly region?: string;
  /** @default '123456789012' */
  readonly account?: string;
  /** Logical id of the state machine when the template has several. @default the only one that no other starts */
  readonly logicalId?: string;
}

/** A Retry or Catch rule. */
export interface ErrorRule {
  readonly ErrorEquals: string[];
  readonly IntervalSeconds?: number;
  readonly MaxAttempts?: number;
  readonly BackoffRate?: number;
  readonly MaxDelaySeconds?: number;
  readonly JitterStrategy?: 'FULL' | 'NONE';
  readonly ResultPath?: string;
  readonly Next?: string;
}

/** The subset of Amazon States Language the tests read; everything else is kept as-is. */
export interface State {
  readonly Type: string;
  readonly Resource?: string;
  readonly Next?: string;
  readonly End?: boolean;
  readonly ResultPath?: string | null;
  readonly Parameters?: Record<string, unknown>;
  readonly ItemsPath?: string;
  readonly MaxConcurrency?: number;
  readonly ItemProcessor?: StateMachineDefinition & { readonly ProcessorConfig?: { readonly Mode?: string } };
  readonly Choices?: ReadonlyArray<Record<string, unknown>>;
  readonly Default?: string;
  readonly Retry?: ErrorRule[];
  readonly Catch?: ErrorRule[];
  readonly Error?: string;
  readonly Cause?: string;
  readonly [key: string]: unknown;
}

export interface StateMachineDefinition {
  readonly StartAt: string;
  readonly States: Record<string, State>;
  readonly QueryLanguage?: string;
  readonly TimeoutSeconds?: number;
  readonly Comment?: string;
}

/** A definition with those of the state machines it starts (`states:startExecution` tasks). */
export interface WorkflowDefinition extends StateMachineDefinition {
  /** Not ASL: by the ARN its tasks name, resolved from the same template (the local runner runs them). */
  readonly nestedStateMachines: Readonly<Record<string, WorkflowDefinition>>;
}

interface TemplateResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
}

type TemplateJson = { readonly Resources?: Record<string, TemplateResource> };

/** The only (or the named) state machine's definition, tokens replaced by fake ARNs: plain ASL. */
export function resolveDefinition(template: Template | TemplateJson, options: ResolveOptions = {}): StateMachineDefinition {
  const { nestedStateMachines: _nested, ...definition } = resolveWorkflow(template, options);
  return definition;
}

/** As resolveDefinition, with the definitions of the state machines it starts, and those they start. */
export function resolveWorkflow(template: Template | TemplateJson, options: ResolveOptions = {}): WorkflowDefinition {
  const json: TemplateJson = isAssertionsTemplate(template) ? (template.toJSON() as TemplateJson) : template;
  const resources = json.Resources ?? {};
  const machines = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine');
  const started = (id: string) => machines.filter(([other]) => other !== id && referencesOf(resources[other].Properties?.DefinitionString).has(id));
  const found = options.logicalId ? machines.filter(([id]) => id === options.logicalId) : machines.filter(([id]) => started(id).length === 0);
  if (found.length !== 1) {
    throw new Error(`resolveDefinition: expected one state machine${options.logicalId ? ` named ${options.logicalId}` : ' that no other starts'}, found ${found.length} (${machines.map(([id]) => id).join(', ') || 'none'})`);
  }
  const context = { resources, region: options.region ?? 'us-east-1', account: options.account ?? '123456789012' };
  return resolveMachine(found[0][0], context, []);
}

/** One state machine's definition, with those it starts under `nestedStateMachines`. */
function resolveMachine(id: string, context: ResolveContext, seen: readonly string[]): WorkflowDefinition {
  if (seen.includes(id)) throw new Error(`resolveDefinition: ${[...seen, id].join(' → ')} start each other`);
  const raw = context.resources[id].Properties?.DefinitionString;
  if (raw === undefined) throw new Error(`resolveDefinition: ${id} has no DefinitionString (DefinitionS3Location is not supported)`);
  const definition = JSON.parse(resolveValue(raw, context, `${id}.DefinitionString`)) as StateMachineDefinition;
  const nested = [...referencesOf(raw)].filter((ref) => context.resources[ref]?.Type === 'AWS::StepFunctions::StateMachine');
  return { ...definition, nestedStateMachines: Object.fromEntries(nested.map((ref) => [fakeArn(ref, 'Ref', context), resolveMachine(ref, context, [...seen, id])])) };
}

/** Logical ids a template value refers to with Ref. */
function referencesOf(value: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const item of value) referencesOf(item, out);
  else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key === 'Ref' && typeof item === 'string') out.add(item);
      else referencesOf(item, out);
    }
  }
  return out;
}

/** Every state, including those inside Map item processors, by name. */
export function allStates(definition: StateMachineDefinition): Record<string, State> {
  const out: Record<string, State> = {};
  for (const [name, state] of Object.entries(definition.States)) {
    out[name] = state;
    if (state.ItemProcessor) Object.assign(out, allStates(state.ItemProcessor));
  }
  return out;
}

/** The ItemReader of a Distributed Map (the subset the local rewrite reads). */
export interface ItemReader {
  readonly Resource: string;
  readonly ReaderConfig?: { readonly InputType?: string };
  readonly Parameters?: Record<string, unknown>;
}

/** What the local reader Task of a rewritten Distributed Map is given (its handler returns `{ input, items }`). */
export interface LocalItemRead {
  readonly input: unknown;
  readonly reader: { readonly InputType: string; readonly Bucket?: string; readonly Key: string };
}

/** The inline Map a rewritten Distributed Map becomes, after its reader Task (which keeps the map's name). */
export function inlineMapName(distributedMap: string): string {
  return `${distributedMap} (inline)`;
}

/**
 * The definition with every Distributed Map made runnable by aws-local-stepfunctions, which has
 * none: the map's name becomes a Task (its local handler reads the ItemReader's object from the
 * local lake and returns `{ input, items }`), followed by an inline Map over `$.items` with the
 * same ItemProcessor, ItemSelector (reading the map's input under `$.input`), MaxConcurrency,
 * Retry and Catch, whose output is the map's input again — as a Distributed Map with ResultPath
 * null leaves it. Other ResultPaths are not supported here.
 */
export function inlineDistributedMaps(definition: StateMachineDefinition): StateMachineDefinition {
  const states: Record<string, State> = {};
  for (const [name, state] of Object.entries(definition.States)) {
    const processor = state.ItemProcessor ? inlineDistributedMaps(state.ItemProcessor) : undefined;
    const current: State = processor ? { ...state, ItemProcessor: { ...state.ItemProcessor, ...processor } } : state;
    const reader = current.ItemReader as ItemReader | undefined;
    if (current.Type !== 'Map' || current.ItemProcessor?.ProcessorConfig?.Mode !== 'DISTRIBUTED' || !reader) {
      states[name] = current;
      continue;
    }
    if (current.ResultPath !== null) throw new Error(`inlineDistributedMaps: ${name} has ResultPath ${JSON.stringify(current.ResultPath)}; only null (the input passes through) runs locally`);
    const { ItemReader: _reader, ItemSelector, Retry, Catch, Label: _label, ToleratedFailurePercentage: _p, ToleratedFailureCount: _c, ResultWriter: _w, Next, End, ...map } = current;
    const readerParameters = Object.fromEntries(Object.entries(reader.Parameters ?? {}));
    states[name] = {
      Type: 'Task',
      Resource: 'arn:aws:lambda:local:000000000000:function:read-map-items',
      Parameters: { 'input.$': '$', reader: { InputType: reader.ReaderConfig?.InputType ?? 'JSON', ...readerParameters } },
      Next: inlineMapName(name),
    };
    states[inlineMapName(name)] = {
      ...map,
      ItemsPath: '$.items',
      ...(ItemSelector ? { ItemSelector: underInput(ItemSelector) } : {}),
      ItemProcessor: { ...current.ItemProcessor!, ProcessorConfig: { Mode: 'INLINE' } },
      OutputPath: '$.input',
      ...(Retry ? { Retry } : {}),
      ...(Catch ? { Catch } : {}),
      ...(Next ? { Next } : {}),
      ...(End ? { End } : {}),
    };
  }
  return { ...definition, States: states };
}

/** An ItemSelector whose paths into the map's input (`$…`) read it under `$.input`; context paths (`$$…`) stay. */
function underInput(selector: unknown): unknown {
  if (Array.isArray(selector)) return selector.map(underInput);
  if (selector === null || typeof selector !== 'object') return selector;
  return Object.fromEntries(Object.entries(selector).map(([key, value]) => {
    if (key.endsWith('.$') && typeof value === 'string' && value.startsWith('$') && !value.startsWith('$$')) return [key, `$.input${value.slice(1)}`];
    return [key, underInput(value)];
  }));
}

interface ResolveContext {
  readonly resources: Record<string, TemplateResource>;
  readonly region: string;
  readonly account: string;
}

function resolveValue(value: unknown, context: ResolveContext, where: string): string {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 1) {
      const [fn, args] = entries[0];
      if (fn === 'Fn::Join' && Array.isArray(args) && args.length === 2 && typeof args[0] === 'string' && Array.isArray(args[1])) {
        return args[1].map((part: unknown, i: number) => resolveValue(part, context, `${where}[${i}]`)).join(args[0]);
      }
      if (fn === 'Fn::GetAtt' && Array.isArray(args) && args.length === 2) return fakeArn(String(args[0]), String(args[1]), context);
      if (fn === 'Ref' && typeof args === 'string') return resolveRef(args, context);
    }
  }
  throw new Error(`resolveDefinition: cannot resolve ${JSON.stringify(value)} at ${where}`);
}

function resolveRef(name: string, context: ResolveContext): string {
  switch (name) {
    case 'AWS::Partition':
      return 'aws';
    case 'AWS::Region':
      return context.region;
    case 'AWS::AccountId':
      return context.account;
    case 'AWS::URLSuffix':
      return 'amazonaws.com';
    default:
      return fakeArn(name, 'Ref', context);
  }
}

/** A syntactically valid ARN for a resource, per type (Lambda functions get function ARNs). */
function fakeArn(logicalId: string, attribute: string, context: ResolveContext): string {
  const type = context.resources[logicalId]?.Type;
  const { region, account } = context;
  switch (type) {
    case 'AWS::Lambda::Function':
      return `arn:aws:lambda:${region}:${account}:function:${logicalId}`;
    case 'AWS::StepFunctions::StateMachine':
      return `arn:aws:states:${region}:${account}:stateMachine:${logicalId}`;
    case 'AWS::SNS::Topic':
      return `arn:aws:sns:${region}:${account}:${logicalId}`;
    case 'AWS::SQS::Queue':
      return `arn:aws:sqs:${region}:${account}:${logicalId}`;
    case 'AWS::S3::Bucket':
      return attribute === 'Ref' ? logicalId.toLowerCase() : `arn:aws:s3:::${logicalId.toLowerCase()}`;
    default:
      return `arn:aws:cloudformation:${region}:${account}:stack/fake/${logicalId}/${attribute}`;
  }
}

function isAssertionsTemplate(value: Template | TemplateJson): value is Template {
  return typeof (value as Template).toJSON === 'function';
}
