// The infra tests read the definition through the same resolver the local runner uses.
export * from '../../bin/local/state-machine-definition.ts';
