#pragma once
// A trainer config file: `model:` (preset or fields) and `train:`; the other scenario sections
// (system, layout, training) may sit beside them for validate-local.
#include "kernels/train_config.h"
#include "model/model_spec.h"

#include <string>

namespace palmsim {

struct TrainerConfigFile {
  ModelSpec model;
  TrainConfig train;
};

TrainerConfigFile load_trainer_config(const std::string& path);

}  // namespace palmsim
