// SHA-256 via WebCrypto (globalThis.crypto.subtle: Node >= 19 and all browsers), so no node:crypto import.

import { FedloraError } from '../errors';

export async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle)
    throw new FedloraError(
      'BACKEND_UNAVAILABLE',
      'sha256: WebCrypto (crypto.subtle) is unavailable; a browser needs a secure context',
    );
  // the copy is backed by a plain ArrayBuffer, which WebCrypto's BufferSource type requires (not a SharedArrayBuffer)
  const digest = await subtle.digest('SHA-256', new Uint8Array(bytes));
  return new Uint8Array(digest);
}

/** Lower-case hex SHA-256, the form used in manifests. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await sha256(bytes);
  let s = '';
  for (const b of d) s += b.toString(16).padStart(2, '0');
  return s;
}
