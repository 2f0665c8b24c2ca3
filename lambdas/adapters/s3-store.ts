// The lake in S3. Honours AWS_ENDPOINT_URL_S3 (then path-style addressing, as local S3 API
// servers need). Conditional writes (If-None-Match / If-Match) carry the lease protocol.
import {
  CopyObjectCommand, DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, S3ServiceException,
} from '@aws-sdk/client-s3';
import type { ObjectStore, PutOptions, StoredObject } from '../core/ports.ts';

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(\/(.*))?$/.exec(url);
  if (!match) throw new Error(`--lake ${JSON.stringify(url)} is not an s3://bucket[/prefix] URL`);
  return { bucket: match[1], prefix: (match[3] ?? '').replace(/\/+$/, '') };
}

export function createS3Client(): S3Client {
  const endpoint = process.env.AWS_ENDPOINT_URL_S3;
  return new S3Client({
    forcePathStyle: endpoint !== undefined,
    // the SDK's standard retry mode: exponential backoff with full jitter on 5xx / throttles
    maxAttempts: Number(process.env.LAKE_S3_MAX_ATTEMPTS ?? 6),
  });
}

function isPreconditionFailure(error: unknown): boolean {
  return error instanceof S3ServiceException && (error.$metadata.httpStatusCode === 412 || error.$metadata.httpStatusCode === 409 || error.name === 'PreconditionFailed');
}

export class S3Store implements ObjectStore {
  readonly url: string;
  private readonly bucket: string;
  private readonly client: S3Client;

  /** `keyPrefix` is prepended to every key (the part of the lake URL after the bucket). */
  constructor(client: S3Client, bucket: string, keyPrefix = '') {
    this.client = client;
    this.bucket = bucket;
    this.prefix = keyPrefix ? `${keyPrefix}/` : '';
    this.url = `s3://${bucket}/${this.prefix}`;
  }
  private readonly prefix: string;

  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<boolean> {
    try {
      await this.client.send(new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.prefix + key,
        Body: typeof body === 'string' ? Buffer.from(body) : body,
        IfNoneMatch: options.ifNoneMatch ? '*' : undefined,
        IfMatch: options.ifMatch !== undefined ? `"${options.ifMatch}"` : undefined,
      }));
      return true;
    } catch (error) {
      if ((options.ifNoneMatch || options.ifMatch !== undefined) && isPreconditionFailure(error)) return false;
      throw error;
    }
  }

  async get(key: string): Promise<StoredObject | null> {
    try {
      const result = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      const body = Buffer.from(await result.Body!.transformToByteArray());
      return { body, etag: (result.ETag ?? '').replaceAll('"', '') };
    } catch (error) {
      if (error instanceof S3ServiceException && (error.name === 'NoSuchKey' || error.$metadata.httpStatusCode === 404)) return null;
      throw error;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }));
      for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key.slice(this.prefix.length));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }

  async move(from: string, to: string): Promise<boolean> {
    const source = `${this.bucket}/${(this.prefix + from).split('/').map(encodeURIComponent).join('/')}`;
    try {
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: this.prefix + to, CopySource: source }));
    } catch (error) {
      if (!(error instanceof S3ServiceException && (error.name === 'NoSuchKey' || error.$metadata.httpStatusCode === 404))) throw error;
      try {
        await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + to }));
        return false;
      } catch {
        throw new Error(`cannot move ${from} to ${to}: neither exists`);
      }
    }
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + from }));
    return true;
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const result = await this.client.send(new DeleteObjectsCommand({
        Bucket: this.bucket,
        Delete: { Objects: batch.map((key) => ({ Key: this.prefix + key })), Quiet: true },
      }));
      if (result.Errors?.length) throw new Error(`S3 refused to delete ${result.Errors.length} objects, first ${result.Errors[0].Key}: ${result.Errors[0].Message}`);
    }
  }
}
