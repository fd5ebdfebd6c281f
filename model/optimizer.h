#pragma once
// The optimizer a run uses: what state it keeps per parameter (memory) and how many bytes its
// update streams per parameter (the optimizer step's time). One place for both.
#include "model/model_spec.h"

#include <string>

namespace palmsim {

enum class Optimizer {
  // Adam / AdamW: fp32 master weight, first and second moments.
  adam,
  // Adafactor as Shazeer & Stern (2018) define it and T5 and GLaM ran it: the second moment of
  // each weight matrix factored into its row and column sums, no first moment (beta1 = 0).
  adafactor,
  // Adafactor "without factorization" and with beta1 = 0.9, as PaLM ran it (PaLM Sec. 5:
  // "effectively equivalent to Adam with parameter scaling"): Adam's state and work.
  adafactor_unfactored,
};

const char* to_string(Optimizer o);
// "adam", "adafactor", "adafactor-unfactored"; InputError naming `field` for anything else.
Optimizer parse_optimizer(const std::string& text, const std::string& field);

// Optimizer state in bytes per parameter beside the weights: the fp32 master weight (under FSDP
// the shard itself, counted as weights) and the moments.
double optimizer_moment_bytes_per_parameter(Optimizer o, const ModelSpec& m);
constexpr double kMasterWeightBytes = 4;  // fp32
// Bytes one update reads and writes per parameter (fp32 gradient, master, moments, bf16 copy).
double optimizer_step_bytes_per_parameter(Optimizer o);

}  // namespace palmsim
