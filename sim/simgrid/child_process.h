#pragma once
// Runs a function in a forked child process and returns its JSON result. SimGrid 3.32 allows one
// engine per process, so every simulation runs in its own child: a CLI run, each row of
// `validate --simulate`, and several simulations inside one test all work the same way.
#include <nlohmann/json.hpp>

#include <functional>

namespace palmsim::simulation {

// Exceptions thrown by `body` in the child are rethrown in the parent: InputError as InputError
// (same field and message), anything else as std::runtime_error.
nlohmann::json run_in_child_process(const std::function<nlohmann::json()>& body);

}  // namespace palmsim::simulation
