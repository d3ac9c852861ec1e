// The coordinator's side of 'frame:part' (shared/src/protocol/frame-parts.ts): one socket's parted request is put
// back together in order, within a budget of bytes shared by all sockets, so that authenticated sites can send
// updates of up to LIMITS.maxFrameBytes while no single frame exceeds the small transport limit.

import { FedloraError } from '@fedlora/shared/errors.ts';
import { joinParts, type FramePart, type PartedEvent } from '@fedlora/shared/protocol/frame-parts.ts';

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
  private current: { id: string; event: PartedEvent; count: number; totalBytes: number; parts: Uint8Array[]; bytes: number } | null =
    null;

  constructor(private readonly budget: PartBudget) {}

  /** Takes a validated part; throws BAD_MESSAGE for one out of order or inconsistent, BUSY over the budget. */
  add(part: FramePart): AssemblyResult {
    if (part.index === 0) {
      this.abandon();
      if (!this.budget.reserve(part.totalBytes))
        throw new FedloraError('BUSY', 'the coordinator is receiving too many large uploads at once: retry shortly');
      this.current = { id: part.id, event: part.event, count: part.count, totalBytes: part.totalBytes, parts: [], bytes: 0 };
    }
    const c = this.current;
    if (!c || c.id !== part.id)
      throw new FedloraError('BAD_MESSAGE', 'a part of a request whose first part was not received');
    if (part.event !== c.event || part.count !== c.count || part.totalBytes !== c.totalBytes)
      throw new FedloraError('BAD_MESSAGE', 'a part disagrees with the first part on event, count or size');
    if (part.index !== c.parts.length)
      throw new FedloraError('BAD_MESSAGE', `part ${part.index} arrived where part ${c.parts.length} was expected`);
    if (c.bytes + part.data.length > c.totalBytes)
      throw new FedloraError('BAD_MESSAGE', 'the parts hold more bytes than announced');
    // copied: socket.io may hand out a view of a larger buffer that it reuses
    c.parts.push(new Uint8Array(part.data));
    c.bytes += part.data.length;
    if (c.parts.length < c.count) return { complete: false, received: c.parts.length };
    this.abandon();
    return { complete: true, event: c.event, payload: joinParts(c.parts, c.totalBytes) };
  }

  /** Drops the request in progress (error, disconnect) and gives its bytes back to the budget. */
  abandon(): void {
    if (this.current) this.budget.release(this.current.totalBytes);
    this.current = null;
  }
}
