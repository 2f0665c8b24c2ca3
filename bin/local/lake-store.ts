// `--lake` URL → object store: file:///abs/dir or s3://bucket[/prefix].
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../../lambdas/core/errors.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { createS3Client, parseS3Url, S3Store } from '../../lambdas/adapters/s3-store.ts';

export function openLake(url: string): ObjectStore {
  if (url.startsWith('s3://')) {
    const { bucket, prefix } = parseS3Url(url);
    return new S3Store(createS3Client(), bucket, prefix);
  }
  if (url.startsWith('file://')) return new DirectoryStore(url);
  if (url.includes('://')) throw new ConfigError(`--lake: ${JSON.stringify(url)} must be file:///absolute/dir or s3://bucket/prefix`);
  // A plain path is taken as a directory, relative to the working directory.
  return new DirectoryStore(pathToFileURL(path.resolve(url)).href);
}
