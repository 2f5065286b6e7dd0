import { closeSync, ftruncateSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';

/** Bytes a spool keeps in memory before it writes them to its file. */
const WRITE_BUFFER = 1 << 20;
/** Bytes read from the file at a time when the spool is read back. */
const READ_BUFFER = 1 << 20;

/**
 * An append-only list of messages (length-prefixed records) that lives in memory until it
 * outgrows one write buffer and in a file after that, can be cut back to an earlier record
 * (a rolled-back subtransaction), and is read back once, in order.
 *
 * The I/O is synchronous on purpose: messages reach it synchronously from the replication
 * stream and must keep their order with everything else the stream hands on; each call
 * writes or reads at most a buffer's worth, which the page cache absorbs.
 */
export class SpoolFile {
  private fd: number | null = null;
  /** Bytes already written to the file; `buf` holds what comes after them. */
  private flushed = 0;
  private buf: Buffer | null = null;
  private bufLen = 0;

  constructor(private readonly path: string) {}

  /** Logical size: where the next record starts. */
  get size(): number {
    return this.flushed + this.bufLen;
  }

  /** Whether the records went beyond memory into the file. */
  get onDisk(): boolean {
    return this.fd !== null;
  }

  /** Appends one record: the bytes of `parts`, concatenated. */
  append(...parts: Buffer[]): void {
    let len = 0;
    for (const p of parts) len += p.length;
    if (this.buf === null) this.buf = Buffer.allocUnsafe(WRITE_BUFFER);
    if (this.bufLen + 4 + len > this.buf.length) this.flush();
    if (4 + len > this.buf.length) {
      // Larger than the buffer: straight to the file.
      const header = Buffer.allocUnsafe(4);
      header.writeUInt32BE(len, 0);
      this.write(header);
      for (const p of parts) this.write(p);
      return;
    }
    this.buf.writeUInt32BE(len, this.bufLen);
    let at = this.bufLen + 4;
    for (const p of parts) at += p.copy(this.buf, at);
    this.bufLen = at;
  }

  /** Drops every record from logical offset `offset` on (an offset `size` once returned). */
  truncate(offset: number): void {
    if (offset >= this.size) return;
    if (offset >= this.flushed) {
      this.bufLen = offset - this.flushed;
      return;
    }
    ftruncateSync(this.fd as number, offset);
    this.flushed = offset;
    this.bufLen = 0;
  }

  /**
   * Reads the records back in order. Each record handed out is valid only until the next
   * call (the read buffer is reused).
   */
  reader(): () => Buffer | null {
    if (this.fd === null) {
      const buf = this.buf ?? Buffer.alloc(0);
      const end = this.bufLen;
      let at = 0;
      return () => {
        if (at >= end) return null;
        const len = buf.readUInt32BE(at);
        const rec = buf.subarray(at + 4, at + 4 + len);
        at += 4 + len;
        return rec;
      };
    }
    this.flush();
    const fd = this.fd;
    const fileEnd = this.flushed;
    let fileAt = 0;
    let rbuf = Buffer.allocUnsafe(READ_BUFFER);
    let start = 0;
    let end = 0;
    /** Makes at least `n` unread bytes available in rbuf[start..end). */
    const ensure = (n: number): boolean => {
      if (end - start >= n) return true;
      if (fileEnd - fileAt < n - (end - start)) return false;
      if (n > rbuf.length) {
        const bigger = Buffer.allocUnsafe(n);
        rbuf.copy(bigger, 0, start, end);
        rbuf = bigger;
      } else {
        rbuf.copy(rbuf, 0, start, end);
      }
      end -= start;
      start = 0;
      while (end < n) {
        const got = readSync(fd, rbuf, end, Math.min(rbuf.length - end, fileEnd - fileAt), fileAt);
        if (got === 0) return false;
        fileAt += got;
        end += got;
      }
      return true;
    };
    return () => {
      if (!ensure(4)) return null;
      const len = rbuf.readUInt32BE(start);
      if (!ensure(4 + len)) throw new Error(`spool ${this.path}: truncated record`);
      const rec = rbuf.subarray(start + 4, start + 4 + len);
      start += 4 + len;
      return rec;
    };
  }

  /** Closes and removes the file (if one was written); the spool is empty afterwards. */
  discard(): void {
    this.buf = null;
    this.bufLen = 0;
    this.flushed = 0;
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
    try {
      unlinkSync(this.path);
    } catch {
      // Already gone (the spool directory was removed): nothing to free.
    }
  }

  private flush(): void {
    if (this.bufLen === 0 || this.buf === null) return;
    const n = this.bufLen;
    this.bufLen = 0;
    this.write(this.buf.subarray(0, n));
  }

  private write(b: Buffer): void {
    if (this.fd === null) this.fd = openSync(this.path, 'w+', 0o600);
    let done = 0;
    while (done < b.length) done += writeSync(this.fd, b, done, b.length - done, this.flushed + done);
    this.flushed += b.length;
  }
}
