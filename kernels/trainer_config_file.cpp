#include "kernels/trainer_config_file.h"

#include "kernels/moe_mlp.h"
#include "model/input_error.h"
#include "model/model_yaml.h"
#include "model/pipeline_schedule.h"
#include "model/yaml_fields.h"

#include <filesystem>

namespace palmsim {

TrainerConfigFile load_trainer_config(const std::string& path) {
  require_regular_file(path, "config");
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw InputError("config", "'" + path + "' is not valid YAML (line " + std::to_string(e.mark.line + 1) + "): " + e.msg);
  }
  if (!root.IsMap()) throw InputError("config", "'" + path + "' must be a YAML map with model: (and layout:, training:, train:)");
  check_keys(root, "config", {"model", "train", "system", "layout", "training", "description", "stack"});
  if (!root["model"]) throw InputError("model", "missing");
  TrainerConfigFile c;
  c.model = parse_model_node(root["model"]);
  if (c.model.ffn != Ffn::swiglu) throw InputError("model.ffn", "the training step implements swiglu only");
  c.train = parse_train_sections(root);
  if (c.model.n_heads % c.train.tp || c.model.d_ff % c.train.tp)
    throw InputError("layout.tp", "must divide n_heads (" + std::to_string(c.model.n_heads) + ") and d_ff (" +
                                     std::to_string(c.model.d_ff) + ")");
  check_trainable_moe(c.model.moe, c.train.tp, c.train.ep);
  if (c.train.cp > 1 && c.model.seq_len % (2 * c.train.cp))
    throw InputError("layout.cp", "must split model.seq_len (" + std::to_string(c.model.seq_len) +
                                     ") into 2 x cp equal chunks (seq_len a multiple of 2 x cp)");
  if (c.train.cp > 1 && c.model.moe.sparse())
    throw InputError("layout.cp", "context parallelism with a sparse model (model.moe) is not implemented; use 1");
  if (defers_weight_gradients(c.train.schedule) && c.model.moe.sparse())
    throw InputError("layout.schedule", std::string(to_string(c.train.schedule)) +
                                            " with a sparse model (model.moe) is not implemented: the experts' "
                                            "weight gradients are not deferred; use 1f1b");
  if (c.train.pp > c.model.n_layers)
    throw InputError("layout.pp", "must not exceed model.n_layers (" + std::to_string(c.model.n_layers) +
                                     "): each pipeline stage holds at least one layer");
  if (int64_t(c.train.pp) * c.train.vpp > c.model.n_layers)
    throw InputError("layout.vpp", "pp x vpp must not exceed model.n_layers (" + std::to_string(c.model.n_layers) +
                                      "): each model chunk holds at least one layer");
  return c;
}

}  // namespace palmsim
