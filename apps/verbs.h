#pragma once
// Each verb adds its subcommand to the app and sets `action` to what runs it when chosen. An action
// returns the exit status; bad input is thrown as InputError and becomes exit 2 in main.
#include <CLI/CLI.hpp>

#include <functional>

namespace palmsim {

using VerbAction = std::function<int()>;

void add_predict_verb(CLI::App& app, VerbAction& action);
void add_search_verb(CLI::App& app, VerbAction& action);
void add_validate_verb(CLI::App& app, VerbAction& action);
void add_fit_verb(CLI::App& app, VerbAction& action);
void add_calibrate_verb(CLI::App& app, VerbAction& action);
void add_simulate_verb(CLI::App& app, VerbAction& action);
void add_train_verb(CLI::App& app, VerbAction& action);
void add_bench_step_verb(CLI::App& app, VerbAction& action);
void add_validate_local_verb(CLI::App& app, VerbAction& action);
void add_sweep_verb(CLI::App& app, VerbAction& action);
void add_merge_verb(CLI::App& app, VerbAction& action);

// Refuses a backend that is not cpu or cuda, or one this build or verb cannot run (each InputError
// names --backend and says why).
void check_backend(const std::string& backend, bool verb_runs_on_cuda);

// Refuses to replace a file the user already has unless `force`; InputError names the option.
void check_output_path(const std::string& path, bool force, const std::string& option);

}  // namespace palmsim
