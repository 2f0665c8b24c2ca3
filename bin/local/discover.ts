// `pg-lake-export discover`: the rules and the YAML are the core's (lambdas/core/source/discover.ts,
// discover-config.ts); the catalog is read through the Postgres adapter, which implements the
// DatabaseSurvey port.
export { CURSOR_CANDIDATES, discoverTables, type DiscoveredTable, type DiscoverOptions } from '../../lambdas/core/source/discover.ts';
export { formatBytes, keptSections, mergeConfig, renderConfig, summarizeDiscovery, type RenderOptions } from '../../lambdas/core/source/discover-config.ts';
