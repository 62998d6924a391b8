/**
 * Positional reads from a slide file.
 *
 * Reads are synchronous pread calls: tile reads are small and mostly served from the page cache,
 * where a thread-pool round trip would cost more than the read itself.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { TesseraError } from '../errors.js';

export class FileSource {
  readonly size: number;
  private fd: number | null;

  private constructor(fd: number, size: number, private readonly name: string) {
    this.fd = fd;
    this.size = size;
  }

  /** Opens a file for reading. Throws SLIDE_NOT_FOUND when it does not exist or cannot be read. */
  static open(path: string, name: string): FileSource {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : `cannot open (${code})`;
      throw new TesseraError('SLIDE_NOT_FOUND', `${name}: ${reason}`, { cause: error });
    }
    const stat = fstatSync(fd);
    if (!stat.isFile()) {
      closeSync(fd);
      throw new TesseraError('SLIDE_NOT_FOUND', `${name}: not a regular file`);
    }
    return new FileSource(fd, stat.size, name);
  }

  contains(offset: number, length: number): boolean {
    return Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= this.size;
  }

  /** Reads exactly `length` bytes at `offset`; throws SLIDE_CORRUPT when they are not in the file. */
  readAt(offset: number, length: number): Buffer {
    if (this.fd === null) throw new TesseraError('INVALID_ARGUMENT', `${this.name}: slide is closed`);
    if (!this.contains(offset, length)) {
      throw new TesseraError('SLIDE_CORRUPT', `${this.name}: data at offset ${offset} (+${length} bytes) lies beyond the end of the file (${this.size} bytes; truncated?)`);
    }
    const buffer = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, buffer, done, length - done, offset + done);
      if (n === 0) throw new TesseraError('SLIDE_CORRUPT', `${this.name}: unexpected end of file at offset ${offset + done}`);
      done += n;
    }
    return buffer;
  }

  close(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}
