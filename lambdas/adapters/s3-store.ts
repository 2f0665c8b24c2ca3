// The lake in S3. Honours AWS_ENDPOINT_URL_S3 (then path-style addressing, as local S3 API
// servers need). Conditional writes (If-None-Match / If-Match) carry the lease protocol.
// A fault S3 still answers after the client's own retries (5xx, SlowDown, a dropped connection)
// surfaces as ThrottlingError, which the workflow retries later with backoff, in every step.
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, UploadPartCommand,
  CopyObjectCommand, DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, S3ServiceException,
} from '@aws-sdk/client-s3';
import { isTransientStoreError, ThrottlingError } from '../core/errors.ts';
import { ByteBuffer } from '../core/page/byte-buffer.ts';
import type { ObjectStore, PutOptions, StoredObject, StreamedWrite } from '../core/ports.ts';

/** Per-key error codes of DeleteObjects that a later attempt can succeed with. */
const TRANSIENT_DELETE_CODES = new Set(['InternalError', 'ServiceUnavailable', 'SlowDown']);

/**
 * A transient S3 fault that outlasted the client's retries. Its name is ThrottlingError (what
 * the workflow retries); it keeps the response's `$metadata` and `code`, which the core's
 * structural isTransientStoreError reads.
 */
export class S3TransientError extends ThrottlingError {
  readonly $metadata?: { httpStatusCode?: number };
  readonly code?: string;
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    const c = cause as { $metadata?: { httpStatusCode?: number }; code?: string } | null;
    this.$metadata = c?.$metadata;
    this.code = c?.code;
  }
}

/** SDK errors S3 may not repeat on a later attempt: RequestTimeout (400) and the client's own timeouts too. */
function isTransientS3Error(error: unknown): boolean {
  const name = (error as { name?: string } | null)?.name;
  return isTransientStoreError(error) || name === 'RequestTimeout' || name === 'TimeoutError';
}

function isNotFound(error: unknown): boolean {
  return error instanceof S3ServiceException && (error.name === 'NoSuchKey' || error.name === 'NotFound' || error.$metadata.httpStatusCode === 404);
}

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

/**
 * Bytes gathered before a part is uploaded. S3 takes parts of 5 MiB to 5 GiB (the last may be
 * smaller) and at most 10,000 of them: 8 MiB parts hold a file of up to 78 GiB, far past
 * lake.targetFileMB, while only one part waits in memory.
 */
export const PART_BYTES = 8 * 1024 * 1024;

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

  /** Sends one request; a transient fault becomes an S3TransientError naming the operation and key. */
  private async send<T>(what: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      if (isTransientS3Error(error) && !(error instanceof ThrottlingError)) {
        throw new S3TransientError(`S3 ${what} in ${this.url} failed after the client's retries: ${(error as Error).name}: ${(error as Error).message}`, error);
      }
      throw error;
    }
  }

  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<boolean> {
    try {
      await this.send(`PUT ${key}`, () => this.client.send(new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.prefix + key,
        Body: typeof body === 'string' ? Buffer.from(body) : body,
        IfNoneMatch: options.ifNoneMatch ? '*' : undefined,
        IfMatch: options.ifMatch !== undefined ? `"${options.ifMatch}"` : undefined,
      })));
      return true;
    } catch (error) {
      if ((options.ifNoneMatch || options.ifMatch !== undefined) && isPreconditionFailure(error)) return false;
      throw error;
    }
  }

  /**
   * A multipart upload, started with the first full part: nothing is visible under the key
   * until CompleteMultipartUpload. A file smaller than one part is a single PutObject at
   * complete(). A writer killed mid-way leaves an incomplete upload (invisible, billed): abort()
   * removes it after a failure, and the lake bucket's AbortIncompleteMultipartUpload lifecycle
   * rule removes what a kill left.
   */
  openWrite(key: string): StreamedWrite {
    const target = this.prefix + key;
    // The next part's bytes, copied as they come (the caller frees its own once write resolves:
    // ports.ts StreamedWrite).
    let pending = new ByteBuffer();
    let uploadId: string | undefined;
    const parts: { PartNumber: number; ETag: string }[] = [];
    let finished = false;
    const gathered = (): Uint8Array => {
      const body = pending.view();
      pending = new ByteBuffer();
      return body;
    };
    const uploadPart = async (body: Uint8Array): Promise<void> => {
      uploadId ??= (await this.send(`CREATE MULTIPART UPLOAD ${key}`, () => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: target })))).UploadId;
      const PartNumber = parts.length + 1;
      const result = await this.send(`UPLOAD PART ${PartNumber} of ${key}`, () => this.client.send(new UploadPartCommand({ Bucket: this.bucket, Key: target, UploadId: uploadId, PartNumber, Body: body })));
      parts.push({ PartNumber, ETag: result.ETag ?? '' });
    };
    return {
      write: async (bytes) => {
        if (finished) throw new Error(`${key}: write after the upload was completed or aborted`);
        pending.append(bytes, 0, bytes.byteLength);
        if (pending.length >= PART_BYTES) await uploadPart(gathered());
      },
      complete: async () => {
        if (finished) throw new Error(`${key}: completed twice or after abort`);
        if (uploadId === undefined) {
          await this.put(key, gathered());
        } else {
          if (pending.length > 0) await uploadPart(gathered());
          await this.send(`COMPLETE MULTIPART UPLOAD ${key}`, () => this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: target, UploadId: uploadId, MultipartUpload: { Parts: parts } })));
        }
        finished = true;
      },
      abort: async () => {
        if (finished) return;
        finished = true;
        pending = new ByteBuffer();
        if (uploadId !== undefined) await this.send(`ABORT MULTIPART UPLOAD ${key}`, () => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: target, UploadId: uploadId })));
      },
    };
  }

  async get(key: string): Promise<StoredObject | null> {
    try {
      // The body is read inside: a connection dropped mid-body is as transient as a 503.
      return await this.send(`GET ${key}`, async () => {
        const result = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
        const body = Buffer.from(await result.Body!.transformToByteArray());
        return { body, etag: (result.ETag ?? '').replaceAll('"', ''), ...(result.LastModified ? { modifiedAt: result.LastModified } : {}) };
      });
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.send(`LIST ${prefix}`, () => this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token })));
      for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key.slice(this.prefix.length));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }

  async move(from: string, to: string): Promise<boolean> {
    const source = `${this.bucket}/${(this.prefix + from).split('/').map(encodeURIComponent).join('/')}`;
    try {
      await this.send(`COPY ${from} to ${to}`, () => this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: this.prefix + to, CopySource: source })));
    } catch (error) {
      if (!isNotFound(error)) throw error;
      try {
        await this.send(`HEAD ${to}`, () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + to })));
        return false;
      } catch (headError) {
        // Only a 404 means "neither exists"; a 5xx is a fault to retry, not a verdict.
        if (!isNotFound(headError)) throw headError;
        throw new Error(`cannot move ${from} to ${to}: neither exists`, { cause: headError });
      }
    }
    await this.send(`DELETE ${from}`, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + from })));
    return true;
  }

  async deleteIf(key: string, etag: string): Promise<boolean> {
    try {
      await this.send(`DELETE ${key}`, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, IfMatch: `"${etag}"` })));
      return true;
    } catch (error) {
      // 412: the object changed; 404 (or 409, a delete or put racing this one): it is gone or going.
      if (isPreconditionFailure(error) || isNotFound(error)) return false;
      throw error;
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const result = await this.send(`DELETE ${batch.length} objects from ${batch[0]}`, () => this.client.send(new DeleteObjectsCommand({
        Bucket: this.bucket,
        Delete: { Objects: batch.map((key) => ({ Key: this.prefix + key })), Quiet: true },
      })));
      if (result.Errors?.length) {
        const first = result.Errors[0];
        const message = `S3 refused to delete ${result.Errors.length} objects, first ${first.Key}: ${first.Code ?? 'no code'}: ${first.Message}`;
        // Per-key 5xx / SlowDown inside a 200 answer: the SDK does not retry those, the workflow will.
        if (result.Errors.every((e) => TRANSIENT_DELETE_CODES.has(e.Code ?? ''))) throw new S3TransientError(message, { code: first.Code });
        throw new Error(message);
      }
    }
  }
}
