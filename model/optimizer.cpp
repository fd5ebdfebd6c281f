#include "model/optimizer.h"

#include "model/accounting.h"
#include "model/input_error.h"

namespace palmsim {

const char* to_string(Optimizer o) {
  switch (o) {
    case Optimizer::adam: return "adam";
    case Optimizer::adafactor: return "adafactor";
    case Optimizer::adafactor_unfactored: return "adafactor-unfactored";
  }
  return "?";
}

Optimizer parse_optimizer(const std::string& text, const std::string& field) {
  for (Optimizer o : {Optimizer::adam, Optimizer::adafactor, Optimizer::adafactor_unfactored})
    if (text == to_string(o)) return o;
  throw InputError(field, "'" + text +
                              "' is not an optimizer; allowed: adam, adafactor (factored second moment, no first "
                              "moment), adafactor-unfactored (PaLM's: Adam's state)");
}

double optimizer_moment_bytes_per_parameter(Optimizer o, const ModelSpec& m) {
  if (o != Optimizer::adafactor) return 8.0;  // two fp32 moments
  // One fp32 row sum and column sum per weight matrix; vectors (norms, biases) keep theirs whole.
  return 4.0 * double(factored_second_moment_elements(m)) / double(parameter_count(m));
}

double optimizer_step_bytes_per_parameter(Optimizer o) {
  // Adam: read gradient, master and both moments, write master and moments, write the bf16 copy:
  // 4 x 4 + 3 x 4 + 2 = 30. Factored Adafactor: read the gradient twice (its squares' row and
  // column sums, then the update), read and write the master, write the bf16 copy: 18.
  return o == Optimizer::adafactor ? 18.0 : 30.0;
}

}  // namespace palmsim
