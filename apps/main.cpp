// palmsim: one binary, verbs (DESIGN.md "Command line"). Exit 0 on success, 2 on bad input with one
// message naming the field, never a crash.
#include "apps/verbs.h"
#include "model/atomic_file.h"
#include "model/input_error.h"

#include <tbb/global_control.h>

#include <filesystem>
#include <iostream>
#include <memory>

namespace palmsim {

void check_output_path(const std::string& path, bool force, const std::string& option) {
  std::error_code ec;  // the non-throwing call: a symbolic link loop is bad input, not a crash
  const std::filesystem::file_status target = std::filesystem::status(path, ec);
  if (ec == std::errc::too_many_symbolic_link_levels)
    throw InputError(option, "'" + path + "' is a symbolic link loop");
  if (std::filesystem::exists(target) && !force)
    throw InputError(option, "'" + path + "' exists; pass --force to replace it");
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent))
    throw InputError(option, "folder '" + parent.string() + "' does not exist");
}

}  // namespace palmsim

int main(int argc, char** argv) {
  CLI::App app{"palmsim: performance model of large-language-model training (analytic, simulated, "
               "and checked against a real training step)"};
  app.require_subcommand(1);
  // One cap on oneTBB's threads for every verb: the answers do not depend on it (tests/cli
  // determinism tests compare 1, 2 and 4 threads byte for byte), only the wall time does.
  int threads = 0;
  app.add_option("--threads", threads, "oneTBB worker threads for any verb (default: all cores)")
      ->check(CLI::Range(1, 4096));
  palmsim::VerbAction action;
  palmsim::remove_temporaries_on_signals();
#ifdef PALMSIM_CUDA_STANDALONE
  // Built with the CUDA toolkit alone (for GPU machines without the other libraries).
  palmsim::add_bench_step_verb(app, action);
#else
  palmsim::add_predict_verb(app, action);
  palmsim::add_simulate_verb(app, action);
  palmsim::add_search_verb(app, action);
  palmsim::add_sweep_verb(app, action);
  palmsim::add_merge_verb(app, action);
  palmsim::add_validate_verb(app, action);
  palmsim::add_fit_verb(app, action);
  palmsim::add_calibrate_verb(app, action);
  palmsim::add_train_verb(app, action);
  palmsim::add_bench_step_verb(app, action);
  palmsim::add_validate_local_verb(app, action);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  std::unique_ptr<tbb::global_control> thread_cap;
  if (threads > 0)
    thread_cap = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, size_t(threads));
  try {
    return action();
  } catch (const palmsim::InputError& e) {
    std::cerr << "palmsim: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "palmsim: internal error: " << e.what() << "\n";
    return 1;
  }
}
