;; Exact GELU and its gradient, four floats at a time (wasm SIMD), run in place on tfjs-wasm's own memory.
;; Why: tfjs-wasm's Erf and Exp are scalar loops (~14 and ~7 ns per float here), and GELU forward + backward as tfjs
;; ops costs ~40 ms per FFN-wide tensor of the reference shape ([1024, 1024]): ~160 ms of a ~700 ms training step.
;; Built into wasm-gelu-bytes.ts by `npx tsx scripts/build-wasm-kernels.ts` (wabt); wasm-gelu.ts runs it.
;;
;;   gelu(x)  = x·Φ(x) = 0.5·x·(1 + erf(x/√2))
;;   gelu'(x) = Φ(x) + x·φ(x),  φ(x) = exp(−x²/2)/√(2π)
;;
;; erf: the rational approximation x·P(x²)/Q(x²) on [−4, 4] (erf is ±1 in float32 beyond), with the coefficients
;; Eigen uses for float32 (its generic_fast_erf_float); measured max abs error 6.5e-8 against a float64 erf
;; (wasm-gelu.test.ts). exp(u), u ≤ 0: u·log2(e) = k + f with k = nearest(·), 2^k built from the exponent bits and
;; e^(f·ln 2) from its Taylor series to degree 7 (|f·ln 2| ≤ 0.347: relative error ≤ 2e-8 before rounding). u is
;; clamped at −87 so that 2^k stays a normal float; e^−87 ≈ 1.6e-38 times x is nothing next to Φ(x).

(module
  (import "env" "memory" (memory 1))

  ;; erf(z), z clamped to [−4, 4]
  (func $erf (param $z v128) (result v128)
    (local $x v128) (local $x2 v128) (local $p v128) (local $q v128)
    (local.set $x (f32x4.max (f32x4.min (local.get $z) (f32x4.splat (f32.const 4))) (f32x4.splat (f32.const -4))))
    (local.set $x2 (f32x4.mul (local.get $x) (local.get $x)))
    ;; numerator, odd: x·(a1 + a3·x² + … + a13·x¹²), by Horner in x²
    (local.set $p (f32x4.splat (f32.const -2.72614225801306e-10)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $x2)) (f32x4.splat (f32.const 2.77068142495902e-08))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $x2)) (f32x4.splat (f32.const -2.10102402082508e-06))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $x2)) (f32x4.splat (f32.const -5.69250639462346e-05))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $x2)) (f32x4.splat (f32.const -7.34990630326855e-04))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $x2)) (f32x4.splat (f32.const -2.95459980854025e-03))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $x2)) (f32x4.splat (f32.const -1.60960333262415e-02))))
    (local.set $p (f32x4.mul (local.get $p) (local.get $x)))
    ;; denominator, even: b0 + b2·x² + … + b8·x⁸
    (local.set $q (f32x4.splat (f32.const -1.45660718464996e-05)))
    (local.set $q (f32x4.add (f32x4.mul (local.get $q) (local.get $x2)) (f32x4.splat (f32.const -2.13374055278905e-04))))
    (local.set $q (f32x4.add (f32x4.mul (local.get $q) (local.get $x2)) (f32x4.splat (f32.const -1.68282697438203e-03))))
    (local.set $q (f32x4.add (f32x4.mul (local.get $q) (local.get $x2)) (f32x4.splat (f32.const -7.37332916720468e-03))))
    (local.set $q (f32x4.add (f32x4.mul (local.get $q) (local.get $x2)) (f32x4.splat (f32.const -1.42647390514189e-02))))
    (f32x4.div (local.get $p) (local.get $q)))

  ;; e^u for u ≤ 0, u clamped at −87
  (func $exp_nonpositive (param $u v128) (result v128)
    (local $y v128) (local $k v128) (local $r v128) (local $e v128)
    (local.set $y (f32x4.mul (f32x4.max (local.get $u) (f32x4.splat (f32.const -87)))
                             (f32x4.splat (f32.const 1.44269504088896341))))
    (local.set $k (f32x4.nearest (local.get $y)))
    (local.set $r (f32x4.mul (f32x4.sub (local.get $y) (local.get $k)) (f32x4.splat (f32.const 0.693147180559945309))))
    ;; e^r = 1 + r(1 + r/2(1 + r/3(1 + r/4(1 + r/5(1 + r/6(1 + r/7))))))
    (local.set $e (f32x4.add (f32x4.splat (f32.const 1)) (f32x4.mul (local.get $r) (f32x4.splat (f32.const 0.142857142857142857)))))
    (local.set $e (f32x4.add (f32x4.splat (f32.const 1)) (f32x4.mul (f32x4.mul (local.get $r) (local.get $e)) (f32x4.splat (f32.const 0.166666666666666667)))))
    (local.set $e (f32x4.add (f32x4.splat (f32.const 1)) (f32x4.mul (f32x4.mul (local.get $r) (local.get $e)) (f32x4.splat (f32.const 0.2)))))
    (local.set $e (f32x4.add (f32x4.splat (f32.const 1)) (f32x4.mul (f32x4.mul (local.get $r) (local.get $e)) (f32x4.splat (f32.const 0.25)))))
    (local.set $e (f32x4.add (f32x4.splat (f32.const 1)) (f32x4.mul (f32x4.mul (local.get $r) (local.get $e)) (f32x4.splat (f32.const 0.333333333333333333)))))
    (local.set $e (f32x4.add (f32x4.splat (f32.const 1)) (f32x4.mul (f32x4.mul (local.get $r) (local.get $e)) (f32x4.splat (f32.const 0.5)))))
    (local.set $e (f32x4.add (f32x4.splat (f32.const 1)) (f32x4.mul (local.get $r) (local.get $e))))
    ;; 2^k: (k + 127) << 23 as the bits of a float
    (f32x4.mul (local.get $e)
      (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $k)) (i32x4.splat (i32.const 127))) (i32.const 23))))

  ;; gelu(x) for 4 floats
  (func $gelu4 (param $x v128) (result v128)
    (f32x4.mul (f32x4.mul (local.get $x) (f32x4.splat (f32.const 0.5)))
      (f32x4.add (f32x4.splat (f32.const 1))
        (call $erf (f32x4.mul (local.get $x) (f32x4.splat (f32.const 0.707106781186547524)))))))

  ;; dy·gelu'(x) for 4 floats
  (func $gelu_grad4 (param $x v128) (param $dy v128) (result v128)
    (local $cdf v128) (local $pdf v128)
    (local.set $cdf (f32x4.mul (f32x4.splat (f32.const 0.5))
      (f32x4.add (f32x4.splat (f32.const 1))
        (call $erf (f32x4.mul (local.get $x) (f32x4.splat (f32.const 0.707106781186547524)))))))
    (local.set $pdf (f32x4.mul (f32x4.splat (f32.const 0.398942280401432678)) ;; 1/√(2π)
      (call $exp_nonpositive (f32x4.mul (f32x4.mul (local.get $x) (local.get $x)) (f32x4.splat (f32.const -0.5))))))
    (f32x4.mul (local.get $dy) (f32x4.add (local.get $cdf) (f32x4.mul (local.get $x) (local.get $pdf)))))

  ;; out[i] = gelu(x[i]), i < n; byte offsets, 4-byte aligned (tfjs-wasm's float32 tensors)
  (func (export "gelu") (param $x i32) (param $out i32) (param $n i32)
    (local $end i32) (local $end4 i32)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $end4 (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done4
      (loop $four
        (br_if $done4 (i32.ge_u (local.get $x) (local.get $end4)))
        (v128.store (local.get $out) (call $gelu4 (v128.load (local.get $x))))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (br $four)))
    ;; the last n mod 4 floats, one at a time through the same 4-wide math
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (f32.store (local.get $out) (f32x4.extract_lane 0 (call $gelu4 (f32x4.splat (f32.load (local.get $x))))))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $out (i32.add (local.get $out) (i32.const 4)))
        (br $one))))

  ;; out[i] = dy[i]·gelu'(x[i]), i < n
  (func (export "gelu_grad") (param $x i32) (param $dy i32) (param $out i32) (param $n i32)
    (local $end i32) (local $end4 i32)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $end4 (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done4
      (loop $four
        (br_if $done4 (i32.ge_u (local.get $x) (local.get $end4)))
        (v128.store (local.get $out) (call $gelu_grad4 (v128.load (local.get $x)) (v128.load (local.get $dy))))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $dy (i32.add (local.get $dy) (i32.const 16)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (br $four)))
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (f32.store (local.get $out)
          (f32x4.extract_lane 0
            (call $gelu_grad4 (f32x4.splat (f32.load (local.get $x))) (f32x4.splat (f32.load (local.get $dy))))))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $dy (i32.add (local.get $dy) (i32.const 4)))
        (local.set $out (i32.add (local.get $out) (i32.const 4)))
        (br $one)))))
