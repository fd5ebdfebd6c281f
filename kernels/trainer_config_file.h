#pragma once
// A trainer config file: `model:` (preset or fields), the scenario's `layout:` and `training:`
// (kernels/train_config.h), `train:` for the trainer's own knobs; `system:` may sit beside them,
// so that `predict` reads the same file (system: {preset: local-cpu, calibration: FILE}).
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
