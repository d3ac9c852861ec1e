// Candidate adapters under federated evaluation: a round's new adapter is scored by the sites before the version
// stage stores it, so it is no registry version yet. One over LIMITS.adapterInlineBytes is named in 'round:evaluate'
// and the sites fetch it in 'adapter:chunk's (socket/site-handlers.ts), which look here for ids the store lacks.
// An adapter is offered only while its evaluation runs. In a cluster only the leader holds them: a site connected to
// another process cannot fetch a large candidate, and its evaluation is left out (docs/OPERATOR.md).

export interface CandidateAdapter {
  bytes: Uint8Array;
  sha256: string;
}

export class CandidateAdapters {
  private readonly offered = new Map<string, CandidateAdapter>();

  /** Offers `adapter` under `id` until the returned function is called. */
  offer(id: string, adapter: CandidateAdapter): () => void {
    this.offered.set(id, adapter);
    return () => {
      if (this.offered.get(id) === adapter) this.offered.delete(id);
    };
  }

  get(id: string): CandidateAdapter | undefined {
    return this.offered.get(id);
  }
}
