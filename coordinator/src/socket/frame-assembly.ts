// The coordinator's side of 'frame:part' (shared/src/protocol/frame-parts.ts): one socket's parted request is put
// back together in order, within a budget of bytes shared by all sockets, so that authenticated sites can send
// updates of up to LIMITS.maxFrameBytes while no single frame exceeds the small transport limit.
// Integrity: a part whose bytes do not hash to its sha256 is HASH_MISMATCH and drops this socket's partial request
// (only its own: other sockets' assemblies and the budget they hold are untouched); the joined request must hash to
// requestSha256 before it is unpacked and parsed.

import { createHash } from 'node:crypto';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { joinParts, unpackRequest, type FramePart, type PartedEvent } from '@fedlora/shared/protocol/frame-parts.ts';

// node:crypto rather than shared crypto/hash.ts (WebCrypto, async): add() stays synchronous, so two parts of one
// socket can never interleave inside it
function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Bytes held by unfinished parted requests, across every socket; a request reserves its announced size. */
export class PartBudget {
  private held = 0;
  constructor(readonly maxBytes: number) {}

  reserve(bytes: number): boolean {
    if (this.held + bytes > this.maxBytes) return false;
    this.held += bytes;
    return true;
  }

  release(bytes: number): void {
    this.held = Math.max(0, this.held - bytes);
  }

  get heldBytes(): number {
    return this.held;
  }
}

export type AssemblyResult =
  | { complete: false; received: number }
  | { complete: true; event: PartedEvent; payload: unknown };

/** One socket's parted request in progress (a socket sends one at a time; a new id abandons the old one). */
export class FrameAssembly {
  private current: {
    id: string;
    event: PartedEvent;
    count: number;
    totalBytes: number;
    requestSha256: string;
    parts: Uint8Array[];
    bytes: number;
  } | null = null;

  constructor(private readonly budget: PartBudget) {}

  /**
   * Takes a validated part; throws BAD_MESSAGE for one out of order or inconsistent, HASH_MISMATCH for a part or a
   * joined request that does not hash to its declared sha256, BUSY over the budget. The caller abandon()s on a throw.
   */
  add(part: FramePart): AssemblyResult {
    if (part.index === 0) {
      this.abandon();
      if (!this.budget.reserve(part.totalBytes))
        throw new FedloraError('BUSY', 'the coordinator is receiving too many large uploads at once: retry shortly');
      this.current = {
        id: part.id,
        event: part.event,
        count: part.count,
        totalBytes: part.totalBytes,
        requestSha256: part.requestSha256,
        parts: [],
        bytes: 0,
      };
    }
    const c = this.current;
    if (!c || c.id !== part.id)
      throw new FedloraError('BAD_MESSAGE', 'a part of a request whose first part was not received');
    if (part.event !== c.event || part.count !== c.count || part.totalBytes !== c.totalBytes || part.requestSha256 !== c.requestSha256)
      throw new FedloraError('BAD_MESSAGE', 'a part disagrees with the first part on event, count, size or request hash');
    if (part.index !== c.parts.length)
      throw new FedloraError('BAD_MESSAGE', `part ${part.index} arrived where part ${c.parts.length} was expected`);
    if (c.bytes + part.data.length > c.totalBytes)
      throw new FedloraError('BAD_MESSAGE', 'the parts hold more bytes than announced');
    if (sha256Hex(part.data) !== part.sha256) {
      this.abandon(); // here already, not only by the caller: a damaged request is never resumed
      throw new FedloraError('HASH_MISMATCH', `part ${part.index} of ${c.count} does not match its sha256: send the request again`);
    }
    // copied: socket.io may hand out a view of a larger buffer that it reuses
    c.parts.push(new Uint8Array(part.data));
    c.bytes += part.data.length;
    if (c.parts.length < c.count) return { complete: false, received: c.parts.length };
    this.abandon();
    const bytes = joinParts(c.parts, c.totalBytes);
    // every part matched its own hash, so this catches parts of different requests or a sender that hashed wrong
    if (sha256Hex(bytes) !== c.requestSha256)
      throw new FedloraError('HASH_MISMATCH', 'the joined parts do not match the request sha256: send the request again');
    return { complete: true, event: c.event, payload: unpackRequest(bytes) };
  }

  /** Drops the request in progress (error, disconnect) and gives its bytes back to the budget. */
  abandon(): void {
    if (this.current) this.budget.release(this.current.totalBytes);
    this.current = null;
  }
}
