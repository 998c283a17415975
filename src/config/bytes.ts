// Byte sizes as people write them. Decimal units (kB, MB, GB, TB) are powers of 1000 and binary
// units (KiB/Ki, MiB/Mi, GiB/Gi, TiB/Ti) powers of 1024, as their names say; a bare "G" is refused
// because half the world reads it one way and half the other.
export const SIZE_PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib|ki|mi|gi|ti)?\s*$/i;

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  ki: 2 ** 10,
  mi: 2 ** 20,
  gi: 2 ** 30,
  ti: 2 ** 40,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** "8GiB" → 8589934592; a number is already bytes. Undefined for text SIZE_PATTERN rejects. */
export function parseByteSize(value: number | string): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? Math.floor(value) : undefined;
  const match = SIZE_PATTERN.exec(value);
  if (match === null) return undefined;
  const unit = UNITS[(match[2] ?? "b").toLowerCase()];
  return unit === undefined ? undefined : Math.floor(Number(match[1]) * unit);
}
