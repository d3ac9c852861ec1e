// Each kernel of our own (GELU, LayerNorm, attention, LoRA's up-projection) has a switch back to plain tfjs ops, for
// parity tests and benchmarks: 'auto' runs ours where they run, 'ops' forces the tfjs ops. A switch is per thread and
// starts from an environment variable where there is one (a worker thread reads its own copy, as a benchmark's).

export type KernelPath = 'auto' | 'ops';

export interface KernelPathSwitch {
  /** the environment variable the setting starts from ('ops' forces the ops) */
  readonly env: string;
  /** true unless the ops are forced */
  readonly auto: () => boolean;
  /** chooses the path in this thread; returns the previous setting */
  readonly set: (path: KernelPath) => KernelPath;
}

export function kernelPathSwitch(env: string): KernelPathSwitch {
  const fromEnv = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[env];
  let configured: KernelPath = fromEnv === 'ops' ? 'ops' : 'auto';
  return {
    env,
    auto: () => configured === 'auto',
    set: (path) => {
      const previous = configured;
      configured = path;
      return previous;
    },
  };
}
