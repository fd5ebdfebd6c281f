#include "apps/verbs.h"
#include "kernels/trainer.h"
#include "kernels/trainer_config_file.h"
#include "model/input_error.h"

#include <fmt/format.h>

#include <filesystem>
#include <iostream>

namespace palmsim {

void add_train_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("train", "Train a PaLM-style model on real text (writes metrics and checkpoints)");
  struct Args {
    std::string config, backend = "cpu", out;
    int64_t steps = 0;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("CONFIG", a->config, "trainer config (model:, layout:, training:, train:)")->required();
  cmd->add_option("--backend", a->backend, "cpu or cuda");
  cmd->add_option("--steps", a->steps, "optimizer steps in total (default: train.steps)")->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option("--out", a->out, "run folder: metrics.jsonl, checkpoint.bin, tokenizer (default out/<config name>)");
  cmd->callback([&action, a] {
    action = [a] {
      check_backend(a->backend, false);
      TrainerConfigFile c = load_trainer_config(a->config);
      if (a->steps > 0) c.train.steps = a->steps;
      const std::string out = a->out.empty() ? "out/" + std::filesystem::path(a->config).stem().string() : a->out;
      const TrainSummary s = train(c.model, c.train, out, std::cout);
      if (s.stopped_on_nan) {
        std::cerr << "palmsim: training stopped on a non-finite loss; last good checkpoint in " << out << "\n";
        return 3;
      }
      if (s.last_step >= s.first_step)
        std::cout << fmt::format("done: steps {}-{}, held-out loss {:.4f} nats/token vs unigram entropy {:.4f} nats/token; "
                                 "{:.0f} tokens/s, MFU {:.1f} %\n",
                                 s.first_step, s.last_step, s.last_val_loss, s.unigram_cross_entropy, s.tokens_per_s,
                                 100 * s.mfu);
      else
        std::cout << "done: the run in " << out << " already reached step " << c.train.steps << "\n";
      return 0;
    };
  });
}

}  // namespace palmsim
