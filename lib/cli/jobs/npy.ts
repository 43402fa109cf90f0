// NPY v1.0 files of float32 rows ([N, dim], '<f4', C order) written as a stream: N is not
// known until the end, so the header's shape field has a fixed width (the row count padded
// with spaces inside the tuple, which numpy's literal_eval accepts) and is rewritten in place
// as rows are appended, without moving the data.
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
/** Digits reserved for the row count (enough for any file). */
const ROW_DIGITS = 20;

/** The full header (magic, version, length, dict) for `rows` x `dim` float32, a multiple of 64 bytes. */
export function npyHeader(rows: number, dim: number): Buffer {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${String(rows).padStart(ROW_DIGITS)}, ${dim}), }`;
  const prefix = MAGIC.length + 2 + 2; // magic, version 1.0, uint16 header length
  const total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  const header = Buffer.alloc(total, 0x20);
  MAGIC.copy(header, 0);
  header[6] = 1;
  header[7] = 0;
  header.writeUInt16LE(total - prefix, 8);
  header.write(dict, prefix, 'latin1');
  header[total - 1] = 0x0a;
  return header;
}

export interface NpyLayout {
  headerBytes: number;
  rows: number;
  dim: number;
}

/** Reads a float32 2-D NPY v1.0 header (as written by npyHeader, or by numpy); null if it is not one. */
export function parseNpyHeader(buf: Buffer): NpyLayout | null {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC) || buf[6] !== 1) return null;
  const headerBytes = 10 + buf.readUInt16LE(8);
  if (buf.length < headerBytes) return null;
  const dict = buf.toString('latin1', 10, headerBytes);
  if (!/'descr':\s*'<f4'/.test(dict) || !/'fortran_order':\s*False/.test(dict)) return null;
  const shape = /'shape':\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)/.exec(dict);
  if (!shape) return null;
  return { headerBytes, rows: Number(shape[1]), dim: Number(shape[2]) };
}
