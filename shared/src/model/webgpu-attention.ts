// Self-attention's core, softmax(Q·Kᵀ/√d + mask)·V over heads, as WebGPU programs that read Q, K and V where the
// projections leave them ([B·T, H], head h in columns h·d … h·d + d − 1) and write the context there too. As tfjs ops
// a layer's attention is ~9 dispatches forward (3 head transposes, 2 batched products, scale, mask, softmax, the
// merge transpose) and ~13 backward; here 2 forward (probabilities, context) and 4 backward (the scores' gradient,
// then dQ, dK, dV), with no transposes at all.
//
// Programs:
// - probabilities: one workgroup per (example, head, query row): the row's scores in workgroup memory, its max and
//   sum by tree reduction, then the softmax written out. As the ops: (q·k)·(1/√d) + mask, exp(s − max) / Σ.
// - context: one thread per output element: Σⱼ P[b, h, i, j]·V[b, j, c]; with `transposed`, Σᵢ P[b, h, i, j]·X[b, i, c]
//   (dK from the scores' gradient and Q, dV from P and the context's gradient).
// - scores' gradient: one workgroup per row: dP = dctx·Vᵀ (kept in workgroup memory), then as tfjs's softmax
//   gradient, (dP·P − Σ(dP·P)·P), times 1/√d.
// Rows longer than MAX_SEQ (workgroup memory) keep the ops.

import * as tf from '@tensorflow/tfjs';
import { flatDispatch, onWebGPU, runWebGPUKernel, type WebGPUKernel, type WebGPUProgramSpec } from './webgpu-kernel';
import { kernelPathSwitch, type KernelPath } from './kernel-path';

const PROBS = 'FedloraAttentionProbs';
const CONTEXT = 'FedloraAttentionContext';
const SCORES_GRAD = 'FedloraAttentionScoresGrad';
const WORKGROUP = 64;
/** the longest sequence a row's scores fit in workgroup memory for (4 KiB of WebGPU's guaranteed 16 KiB) */
export const MAX_SEQ = 1024;

/** 'auto': these programs on webgpu; 'ops' forces tfjs ops (parity tests, benchmarks). */
export type AttentionPath = KernelPath;
export const ATTENTION_PATH_ENV = 'FEDLORA_ATTENTION_PATH';
const pathSwitch = kernelPathSwitch(ATTENTION_PATH_ENV);

/** Chooses how attention runs in this thread; returns the previous setting. */
export const setAttentionPath = (p: AttentionPath): AttentionPath => pathSwitch.set(p);

/** True when attention over sequences of length seqLen runs as our programs here. */
export function fusedAttentionAvailable(seqLen: number): boolean {
  return pathSwitch.auto() && onWebGPU() && seqLen <= MAX_SEQ;
}

export interface AttentionShape {
  batch: number;
  seqLen: number;
  heads: number;
  headSize: number;
}

const shapeUniforms = (s: AttentionShape, rows: number) => [
  { type: 'int32' as const, data: [s.seqLen] },
  { type: 'int32' as const, data: [s.heads] },
  { type: 'int32' as const, data: [s.headSize] },
  { type: 'int32' as const, data: [rows] },
  { type: 'float32' as const, data: [1 / Math.sqrt(s.headSize)] },
];
const SHAPE_UNIFORMS = 'seqLen : i32, heads : i32, headSize : i32, rows : i32, scale : f32,';

/** Row programs: one workgroup per (example, head, query row); `body` sees b, h, i, row, tid, valid, T, H, hd. */
function rowProgram(shaderKey: string, variableNames: string[], s: AttentionShape, body: string): WebGPUProgramSpec {
  const rows = s.batch * s.heads * s.seqLen;
  return {
    variableNames,
    outputShape: [s.batch, s.heads, s.seqLen, s.seqLen],
    shaderKey,
    dispatchLayout: { x: [0, 1, 2, 3] },
    dispatch: [rows, 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    uniforms: SHAPE_UNIFORMS,
    getUserCode: () => `
var<workgroup> rowValues : array<f32, ${MAX_SEQ}>;
var<workgroup> partA : array<f32, ${WORKGROUP}>;
var<workgroup> partB : array<f32, ${WORKGROUP}>;
fn maxA(tid : i32) {
  for (var half = ${WORKGROUP / 2}; half > 0; half = half / 2) {
    if (tid < half) { partA[tid] = max(partA[tid], partA[tid + half]); }
    workgroupBarrier();
  }
}
fn sumB(tid : i32) {
  for (var half = ${WORKGROUP / 2}; half > 0; half = half / 2) {
    if (tid < half) { partB[tid] = partB[tid] + partB[tid + half]; }
    workgroupBarrier();
  }
}
fn main(index : i32) {
  let tid = i32(localId.x);
  let T = uniforms.seqLen;
  let hd = uniforms.headSize;
  let H = uniforms.heads * hd;
  // a folded dispatch may have workgroups past the last row: they compute the last row and write nothing
  let valid = index / ${WORKGROUP} < uniforms.rows;
  let row = min(index / ${WORKGROUP}, uniforms.rows - 1);
  let i = row % T;
  let h = (row / T) % uniforms.heads;
  let b = row / (T * uniforms.heads);
  ${body}
}`,
  };
}

const probsKernel: WebGPUKernel = ({ inputs, backend, attrs }) => {
  const s = attrs as unknown as AttentionShape;
  const program = rowProgram(
    'fedloraAttentionProbs',
    ['q', 'k', 'bias'],
    s,
    `let qBase = (b * T + i) * H + h * hd;
  var rowMax = -3.402823e+38;
  for (var j = tid; j < T; j = j + ${WORKGROUP}) {
    let kBase = (b * T + j) * H + h * hd;
    var dot = 0.0;
    for (var d = 0; d < hd; d = d + 1) { dot = dot + q[qBase + d] * k[kBase + d]; }
    let score = dot * uniforms.scale + bias[b * T + j];
    rowValues[j] = score;
    rowMax = max(rowMax, score);
  }
  partA[tid] = rowMax;
  workgroupBarrier();
  maxA(tid);
  let m = partA[0];
  var sum = 0.0;
  for (var j = tid; j < T; j = j + ${WORKGROUP}) { sum = sum + exp(rowValues[j] - m); }
  partB[tid] = sum;
  workgroupBarrier();
  sumB(tid);
  let total = partB[0];
  if (valid) {
    for (var j = tid; j < T; j = j + ${WORKGROUP}) { result[row * T + j] = exp(rowValues[j] - m) / total; }
  }`,
  );
  const rows = s.batch * s.heads * s.seqLen;
  return backend.runWebGPUProgram(program, [inputs.q, inputs.k, inputs.bias] as tf.TensorInfo[], 'float32', shapeUniforms(s, rows));
};

const scoresGradKernel: WebGPUKernel = ({ inputs, backend, attrs }) => {
  const s = attrs as unknown as AttentionShape;
  const program = rowProgram(
    'fedloraAttentionScoresGrad',
    ['p', 'dctx', 'v'],
    s,
    `let dBase = (b * T + i) * H + h * hd;
  var sum = 0.0;
  for (var j = tid; j < T; j = j + ${WORKGROUP}) {
    let vBase = (b * T + j) * H + h * hd;
    var dp = 0.0;
    for (var d = 0; d < hd; d = d + 1) { dp = dp + dctx[dBase + d] * v[vBase + d]; }
    let dpp = dp * p[row * T + j];
    rowValues[j] = dpp;
    sum = sum + dpp;
  }
  partB[tid] = sum;
  workgroupBarrier();
  sumB(tid);
  let total = partB[0];
  if (valid) {
    for (var j = tid; j < T; j = j + ${WORKGROUP}) {
      result[row * T + j] = (rowValues[j] - total * p[row * T + j]) * uniforms.scale;
    }
  }`,
  );
  const rows = s.batch * s.heads * s.seqLen;
  return backend.runWebGPUProgram(program, [inputs.p, inputs.dctx, inputs.v] as tf.TensorInfo[], 'float32', shapeUniforms(s, rows));
};

const contextKernel: WebGPUKernel = ({ inputs, backend, attrs }) => {
  const s = attrs as unknown as AttentionShape;
  const transposed = attrs.transposed === 1;
  const size = s.batch * s.seqLen * s.heads * s.headSize;
  // out[b, i, c] = Σⱼ P[b, h, i, j]·X[b, j, c], or with P transposed: Σⱼ P[b, h, j, i]·X[b, j, c]
  const pIndex = transposed ? '(bh * T + j) * T + i' : '(bh * T + i) * T + j';
  const program: WebGPUProgramSpec = {
    variableNames: ['p', 'x'],
    outputShape: [s.batch * s.seqLen, s.heads * s.headSize],
    shaderKey: `fedloraAttentionContext${transposed ? 'T' : ''}`,
    dispatchLayout: { x: [0, 1] },
    dispatch: flatDispatch(size, WORKGROUP),
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    uniforms: SHAPE_UNIFORMS,
    getUserCode: () => `
fn main(index : i32) {
  if (index < uniforms.size) {
    let T = uniforms.seqLen;
    let H = uniforms.heads * uniforms.headSize;
    let c = index % H;
    let i = (index / H) % T;
    let b = index / (H * T);
    let bh = b * uniforms.heads + c / uniforms.headSize;
    var acc = 0.0;
    for (var j = 0; j < T; j = j + 1) { acc = acc + p[${pIndex}] * x[(b * T + j) * H + c]; }
    result[index] = acc;
  }
}`,
  };
  return backend.runWebGPUProgram(program, [inputs.p, inputs.x] as tf.TensorInfo[], 'float32', shapeUniforms(s, 0));
};

const attrsOf = (s: AttentionShape, extra: Record<string, number> = {}) => ({
  batch: s.batch,
  seqLen: s.seqLen,
  heads: s.heads,
  headSize: s.headSize,
  ...extra,
});

/**
 * softmax(Q·Kᵀ/√d + bias)·V per head, on the webgpu backend (the caller checked fusedAttentionAvailable). q, k, v:
 * [B·T, H]; bias: the additive mask, [B, T] (0 for tokens, a large negative number for padding). Returns the
 * context [B·T, H], heads side by side as the merge transpose left them; differentiable in q, k and v.
 */
export function attentionOnWebGPU(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, bias: tf.Tensor2D, s: AttentionShape): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [qi, ki, vi, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const p = runWebGPUKernel(PROBS, probsKernel, { q: qi, k: ki, bias }, attrsOf(s));
    save([qi, ki, vi, p]);
    return {
      value: runWebGPUKernel(CONTEXT, contextKernel, { p, x: vi }, attrsOf(s, { transposed: 0 })),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [qs, ks, vs, ps] = saved;
        const dScores = runWebGPUKernel(SCORES_GRAD, scoresGradKernel, { p: ps, dctx: dy, v: vs }, attrsOf(s));
        return [
          runWebGPUKernel(CONTEXT, contextKernel, { p: dScores, x: ks }, attrsOf(s, { transposed: 0 })), // dQ
          runWebGPUKernel(CONTEXT, contextKernel, { p: dScores, x: qs }, attrsOf(s, { transposed: 1 })), // dK
          runWebGPUKernel(CONTEXT, contextKernel, { p: ps, x: dy }, attrsOf(s, { transposed: 1 })), // dV
        ];
      },
    };
  });
  return f(q, k, v) as tf.Tensor2D;
}
