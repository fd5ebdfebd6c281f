// `palmsim merge SHARD.csv... -o OUT.csv`: joins the shards of `sweep --shard I/N` (a Slurm job
// array's outputs) into the file one `sweep` run writes, byte for byte.
#include "apps/verbs.h"
#include "model/input_error.h"
#include "sim/csv_table.h"
#include "sim/sweep.h"

#include <fstream>
#include <iostream>
#include <iterator>

namespace palmsim {

void add_merge_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("merge", "Join the shard files of `sweep --shard I/N` into one CSV");
  auto shards = std::make_shared<std::vector<std::string>>();
  auto output = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  cmd->add_option("SHARD", *shards, "shard files, in any order")->required();
  cmd->add_option("-o,--output", *output, "CSV file to write (default: standard output)");
  cmd->add_flag("--force", *force, "replace an existing output file");
  cmd->callback([&action, shards, output, force] {
    action = [shards, output, force] {
      if (!output->empty()) check_output_path(*output, *force, "-o");
      std::vector<std::string> texts;
      for (const std::string& path : *shards) {
        require_regular_file(path, "SHARD");
        std::ifstream in(path, std::ios::binary);
        if (!in) throw InputError("SHARD", "cannot read '" + path + "'");
        texts.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
      const std::string merged = merge_sweep_shards(texts, *shards);
      if (output->empty())
        std::cout << merged << std::flush;
      else
        write_text_atomically(merged, *output, "-o");
      return 0;
    };
  });
}

}  // namespace palmsim
