// The local S3 API server for tests: fauxqs behind a small loopback proxy that enforces S3's
// conditional writes. fauxqs 2.4.1 ignores If-None-Match and If-Match on PutObject (a second
// create-only put succeeds and overwrites), so without this every fence the protocol builds on
// them — the lease, the watermark, journals and manifests written once — would go untested on
// an S3 lake. The proxy serialises writes per key and answers 412 PreconditionFailed as S3 does:
// If-None-Match: * when the key exists, If-Match: <etag> when it is missing or its ETag differs
// (on PutObject, and on DeleteObject: a conditional delete).
// Every client (the test process and the children it kills) goes through the one proxy, so the
// check and the write are atomic for all of them. Other requests pass through unchanged.
import { startFauxqs } from 'fauxqs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LocalS3Server {
  /** The proxy's URL (http://127.0.0.1:<port>): point the S3 client here. */
  readonly address: string;
  createBucket(name: string): Promise<void> | void;
  stop(): Promise<void>;
}

export async function startS3Server(): Promise<LocalS3Server> {
  const upstream = await startFauxqs({ port: 0, logger: false, host: '127.0.0.1' });
  const target = new URL(upstream.address);
  // One write at a time per object path: the precondition check and the put are one step.
  const locks = new Map<string, Promise<void>>();
  const withLock = async <T>(key: string, work: () => Promise<T>): Promise<T> => {
    const before = locks.get(key) ?? Promise.resolve();
    let release = () => {};
    const mine = new Promise<void>((resolve) => { release = resolve; });
    const chained = before.then(() => mine);
    locks.set(key, chained);
    await before;
    try {
      return await work();
    } finally {
      release();
      if (locks.get(key) === chained) locks.delete(key);
    }
  };
  const forward = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): Promise<void> => new Promise((resolve, reject) => {
    const out = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 500, answer.headers);
      answer.pipe(res);
      answer.on('end', resolve);
      answer.on('error', reject);
    });
    out.on('error', reject);
    out.end(body);
  });
  const etagOf = (path: string): Promise<string | null> => new Promise((resolve, reject) => {
    const head = http.request({ host: target.hostname, port: target.port, method: 'HEAD', path }, (answer) => {
      answer.resume();
      resolve(answer.statusCode === 200 ? String(answer.headers.etag ?? '') : null);
    });
    head.on('error', reject);
    head.end();
  });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', 'http://proxy');
      const ifNoneMatch = req.headers['if-none-match'];
      const ifMatch = req.headers['if-match'];
      // A PutObject (not a part upload) with a condition: checked and written under the key's lock.
      const conditional = (req.method === 'PUT' && !url.searchParams.has('uploadId') && !req.headers['x-amz-copy-source'] && (ifNoneMatch !== undefined || ifMatch !== undefined))
        || (req.method === 'DELETE' && ifMatch !== undefined);
      // Every write of an object waits for a conditional one on the same key (and the reverse).
      const writes = (req.method === 'PUT' && !url.searchParams.has('uploadId')) || req.method === 'DELETE';
      const work = writes
        ? withLock(url.pathname, async () => {
          if (!conditional) return forward(req, body, res);
          const etag = await etagOf(url.pathname);
          const failed = (ifNoneMatch === '*' && etag !== null) || (ifMatch !== undefined && (etag === null || etag !== ifMatch));
          if (!failed) return forward(req, body, res);
          res.writeHead(412, { 'content-type': 'application/xml' });
          res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>');
        })
        : forward(req, body, res);
      work.catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(502);
        res.end(String(error));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    address: `http://127.0.0.1:${port}`,
    createBucket: (name) => { upstream.createBucket(name); },
    stop: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await upstream.stop();
    },
  };
}
