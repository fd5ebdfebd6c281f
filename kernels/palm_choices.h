#pragma once
// What the PaLM paper (Chowdhery et al. 2022, Sec. 2 and 5) leaves open, chosen once here.
namespace palmsim::palm_choices {

// LayerNorm epsilon: the paper gives none; 1e-6 is the T5X/Flax default PaLM's stack used.
constexpr double kLayerNormEpsilon = 1e-6;
// RoPE base: the paper cites Su et al. (RoFormer), whose base is 10000.
constexpr double kRopeBase = 10000.0;
// A final LayerNorm before the (shared) output embedding, as in every pre-LN decoder.
constexpr bool kFinalLayerNorm = true;
// Auxiliary z-loss weight on log^2 Z (Sec. 5: 1e-4).
constexpr double kZLossWeight = 1e-4;
// Adafactor without factorization: parameter scaling floors the RMS at this value (Adafactor's
// epsilon2) and the second moment has this epsilon (epsilon1).
constexpr double kParameterScaleFloor = 1e-3;
constexpr double kSecondMomentEpsilon = 1e-30;

}  // namespace palmsim::palm_choices
